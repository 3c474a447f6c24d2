// Starts Swagger UI on /docs (app/ui/templates/docs.html). A file, not an inline script:
// the Content-Security-Policy (app/ui/headers.py) allows scripts from 'self' only.
"use strict";
(function () {
  const root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    domNode: root,
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    // "Authorize" takes the API key (the ApiKey Bearer scheme) and "Try it out" sends it; the
    // key lives in the page only, never in localStorage, where any script of the origin reads it.
    persistAuthorization: false,
    // The default posts the document to validator.swagger.io: nothing leaves this origin.
    validatorUrl: null,
  });
})();
