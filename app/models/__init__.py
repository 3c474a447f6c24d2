"""ORM tables, one file each; importing this module registers them all."""
from app.models.base import Base
from app.models.tenant import ApiKey, Tenant
from app.models.dataset import Dataset
from app.models.job import Job
from app.models.job_event import JobEvent
from app.models.metric import Metric
from app.models.worker import Worker
from app.models.study import Study, StudyEvent
from app.models.browser_session import BrowserSession
from app.models.upload import Upload, UploadPart
from app.models.webhook import Webhook, WebhookDelivery

__all__ = ["Base", "Tenant", "ApiKey", "Dataset", "Job", "JobEvent", "Metric", "Worker", "Study", "StudyEvent",
           "BrowserSession", "Webhook", "WebhookDelivery", "Upload", "UploadPart"]
