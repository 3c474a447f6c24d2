"""A study's conductor: makes its members (a search's next trials), releases held members while the
study has room, and completes the study when every member has ended.

``advance`` is called after anything that may give a study room or end it: the study's
creation (API), a member's end (its worker, or the API cancelling a waiting member) and,
as the safety net for a process that died in between, every reaper sweep. It first takes
the study row's lock (a no-op UPDATE), so two processes advancing one study at once run one
after the other: a held member is released once, a trial number is made once.
"""
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.config import get_settings
from app.errors import FieldErrors
from app.jobs import lifecycle as jobs_lifecycle
from app.jobs import service as jobs_service
from app.jobs.lifecycle import ACTIVE, JobStatus
from app.models import Job, Study
from app.studies import checks, lifecycle, packing, repository, search
from app.studies import events as study_events
from app.studies.lifecycle import StudyStatus
from app.studies.members import Member, Override, normalize
from app.studies.schemas import StudyCreate
from app.workers import repository as workers

STATES = {JobStatus.SUCCEEDED: "complete", JobStatus.PRUNED: "pruned", JobStatus.FAILED: "failed",
          JobStatus.CANCELLED: "failed"}


def add_member(*, db_session: Session, study: Study, checked: checks.Checked) -> Job:
    """Stores one checked member as a held job of the study."""
    m = checked.member
    job = jobs_service.build(db_session=db_session, tenant_id=study.tenant_id, spec=checked.spec,
                             data=checked.data, job_plan=checked.plan, study_id=study.id, variant=m.variant,
                             member=m.index, params=m.params, labels=study.labels or {})
    jobs_lifecycle.create(db_session=db_session, job=job, held=True)
    return job


def parallel(*, db_session: Session, request: StudyCreate) -> int:
    """How many members may run at once: the request's, else one per worker online (at least one)."""
    asked = request.parallel or (request.search.parallel if request.search else None)
    if asked:
        return asked
    seconds = get_settings().worker_offline_seconds
    online = sum(workers.online_count(db_session=db_session, kind=k, offline_seconds=seconds) for k in ("cpu", "gpu"))
    return max(online, 1)


def advance(*, db_session: Session, study_id: str) -> list[tuple[str, str]]:
    """Moves a running study on; returns the (job id, queue) of the members released, to send after the commit."""
    study = _lock(db_session, study_id)
    if study is None:
        return []
    request = StudyCreate.model_validate(study.spec)
    jobs = repository.members(db_session=db_session, study_id=study_id)
    running = [j for j in jobs if j.status in ACTIVE and j.status != JobStatus.HELD]
    held = [j for j in jobs if j.status == JobStatus.HELD]
    # A pack of members counts as one slot (app/studies/packing.py).
    key, most = _pack_key(), get_settings().pack_max_members
    room = parallel(db_session=db_session, request=request) - packing.slots(running, key, _pack_of, most)
    new = _new_trials(db_session, study, request, jobs, room - len(held)) if study.kind == "search" else []
    held += new
    chosen = packing.releasable(held, max(room, 0), key, most)
    released = jobs_lifecycle.release(db_session=db_session, job_ids=[j.id for j in chosen])
    if not running and not held and len(jobs) + len(new) + study.refused >= study.planned:
        lifecycle.complete(db_session=db_session, study_id=study_id)
    queues = {j.id: j.queue for j in held}
    return [(job_id, queues[job_id]) for job_id in released]


def _pack_key():
    """A member's pack key (None: it runs alone, as every member does with PACK_MAX_MEMBERS=1), read once."""
    if get_settings().pack_max_members <= 1:
        return lambda job: None
    keys: dict[str, str | None] = {}
    return lambda job: keys[job.id] if job.id in keys else keys.setdefault(job.id, packing.key_of(job.spec))


def _pack_of(job: Job) -> str | None:
    return job.pack_id if job.status == JobStatus.RUNNING else None


def _lock(db_session: Session, study_id: str) -> Study | None:
    locked = db_session.execute(
        update(Study).where(Study.id == study_id, Study.status == StudyStatus.RUNNING)
        .values(last_event_id=Study.last_event_id).returning(Study.id)
        .execution_options(synchronize_session=False)).scalar_one_or_none()
    if locked is None:
        return None
    return db_session.scalars(select(Study).where(Study.id == study_id)
                              .execution_options(populate_existing=True)).one()


def trial_records(*, request: StudyCreate, jobs: list[Job],
                  reports: list[tuple[int, int, float]]) -> list[search.TrialRecord]:
    """The search's trials as Optuna sees them: the member jobs, with their objective values by epoch
    from ``reports`` (repository.objective_reports)."""
    values: dict[int, dict[int, float]] = {}
    for member, epoch, value in reports:
        values.setdefault(member, {})[epoch] = value
    space = request.search.space
    return [search.TrialRecord(number=j.member, params={k: (j.params or {}).get(normalize(k)) for k in space},
                               state=STATES.get(j.status, "running"), values=values.get(j.member, {}))
            for j in jobs]


def _new_trials(db_session: Session, study: Study, request: StudyCreate, jobs: list[Job], wanted: int) -> list[Job]:
    """Asks Optuna for up to ``wanted`` new trials and stores them held; a trial whose spec fails its
    check counts toward the trials, is recorded in the study's log, and is not run."""
    if wanted <= 0 or len(jobs) + study.refused >= study.planned:
        return []  # no room, or every trial made: no history to read
    reports = repository.objective_reports(db_session=db_session, jobs=jobs, metric=request.objective.metric)
    made, records = [], trial_records(request=request, jobs=jobs, reports=reports)
    seed = trial_seed(request)
    while len(made) < wanted and len(jobs) + len(made) + study.refused < study.planned:
        number = len(jobs) + len(made)
        params = search.next_params(search=request.search, mode=request.objective.mode, trials=records,
                                    seed=seed + study.refused)
        if params is None:  # the grid is exhausted
            study.planned = number + study.refused
            break
        member = search_member(number, params, request)
        try:
            checked = checks.check_one(db_session=db_session, tenant_id=study.tenant_id, base=request.base,
                                       member=member, objective=request.objective, settings=get_settings(),
                                       datasets={})
        except FieldErrors as exc:
            study.refused += 1
            study_events.append(db_session=db_session, study_id=study.id, events=[
                ("refused", {"params": params, "errors": exc.errors})])
            continue
        job = add_member(db_session=db_session, study=study, checked=checked)
        made.append(job)
        records.append(search.TrialRecord(number=number, params=params, state="running", values={}))
    db_session.flush()
    return made


def trial_seed(request: StudyCreate) -> int:
    """The search's seed: its one seed, else the base spec's training.seed (0 by default)."""
    if request.seeds:
        return request.seeds[0]
    training = request.base.get("training")
    seed = training.get("seed", 0) if isinstance(training, dict) else 0
    # A base seed that is not a seed fails the member's own check, which names it.
    return seed if isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < 2**63 else 0


def search_member(number: int, params: dict, request: StudyCreate) -> Member:
    """Trial ``number`` of a search as a member: its sampled params over the base spec."""
    overrides = tuple(Override(normalize(k), v, f"search.space.{k}") for k, v in params.items())
    if request.seeds:
        overrides += (Override("training.seed", request.seeds[0], "seeds[0]"),)
    label = f"trial {number}"
    return Member(number, label, trial_seed(request), overrides)


def running_ids(*, db_session: Session) -> list[str]:
    """The studies still running: the reaper advances each at every sweep."""
    return list(db_session.scalars(select(Study.id).where(Study.status == StudyStatus.RUNNING)).all())
