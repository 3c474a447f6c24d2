"""Every member of a study checked before anything is stored: its spec, its pre-flight plan, the objective."""
import json
from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.config import Settings
from app.datasets import job_data
from app.errors import FieldErrors
from app.jobs.service import limits
from app.ml.check import Plan
from app.ml.errors import DataError, SpecError
from app.ml.losses import CLASS_LABEL_LOSSES
from app.ml.spec import JobSpec
from app.studies.members import Member, MemberError, attribute, spec_of
from app.studies.schemas import Objective

ACCURACY_LOSSES = (*CLASS_LABEL_LOSSES, "bce_with_logits")  # the losses whose epochs report val_accuracy
MAX_ERRORS = 20


@dataclass
class Checked:
    member: Member
    spec: JobSpec
    data: job_data.JobData
    plan: Plan


def check(*, db_session: Session, tenant_id: str, base: dict, members: list[Member], objective: Objective,
          settings: Settings) -> list[Checked]:
    """Each member's checked spec and plan; raises FieldErrors naming the request's fields.

    The same mistake in the base spec fails every member: it is reported once.
    """
    errors: list[dict] = []
    checked, datasets = [], {}
    for member in members:
        try:
            checked.append(check_one(db_session=db_session, tenant_id=tenant_id, base=base, member=member,
                                     objective=objective, settings=settings, datasets=datasets))
        except FieldErrors as exc:
            errors += [e for e in exc.errors if e not in errors]
        if len(errors) >= MAX_ERRORS:
            break
    if errors:
        raise FieldErrors(errors)
    return checked


def check_one(*, db_session: Session, tenant_id: str, base: dict, member: Member, objective: Objective,
              settings: Settings, datasets: dict) -> Checked:
    """One member's spec and plan; ``datasets`` caches the resolved datasets between members."""
    spec = spec_of(base, member)
    try:
        key = json.dumps([spec.model_dump(mode="json")["dataset"], spec.data.validation_dataset])
        if key not in datasets:
            datasets[key] = job_data.resolve(db_session=db_session, tenant_id=tenant_id, spec=spec)
        plan = job_data.plan(spec, datasets[key], limits(settings))
    except (SpecError, DataError) as exc:
        raise MemberError([{"field": attribute(exc.field, member.overrides), "message": exc.message}]) from None
    _check_objective(objective, spec, plan, member)
    return Checked(member, spec, datasets[key], plan)


def _check_objective(objective: Objective, spec: JobSpec, plan: Plan, member: Member) -> None:
    metric = objective.metric
    if metric.startswith("val_") and plan.validation_rows == 0:
        raise MemberError([{"field": "objective.metric", "message": (
            f"{metric} needs validation data, and {member.variant} has none: set training.validation_split "
            "in base (e.g. 0.2) or data.validation_dataset, or rank on train_loss")}])
    if metric == "val_accuracy" and spec.loss.type not in ACCURACY_LOSSES:
        raise MemberError([{"field": "objective.metric", "message": (
            f"val_accuracy is reported for the classification losses ({', '.join(ACCURACY_LOSSES)}); "
            f"{member.variant} trains with {spec.loss.type}: rank on val_loss")}])
