"""A session with default options: get_session returns them, list_sessions finds it."""

from datetime import timedelta

from armonik.common import Session, SessionStatus, TaskOptions

from common import Client, check, done

c = Client()
options = TaskOptions(
    max_duration=timedelta(seconds=42),
    priority=3,
    max_retries=5,
    partition_id="default",
    application_name="dev-python",
    application_version="1.2.3",
    options={"key": "value", "ConventionVersion": "v1"},
)
sid = c.sessions.create_session(options)
print(f"session: {sid}")
session = c.sessions.get_session(sid)
check(session.session_id == sid, f"get_session returns the session ({session.session_id})")
check(session.status == SessionStatus.RUNNING, f"it is RUNNING ({session.status!r})")
got = session.options
check(got.max_duration == timedelta(seconds=42), f"max_duration kept ({got.max_duration})")
check(got.priority == 3, f"priority kept ({got.priority})")
check(got.max_retries == 5, f"max_retries kept ({got.max_retries})")
check(got.application_name == "dev-python", f"application_name kept ({got.application_name})")
check(got.application_version == "1.2.3", f"application_version kept ({got.application_version})")
check(got.options == options.options, f"options kept ({got.options})")
check(session.partition_ids == ["default"], f"partition_ids ({session.partition_ids})")

total, listed = c.sessions.list_sessions()
check(sid in [s.session_id for s in listed], f"list_sessions lists it ({total} sessions)")
total, listed = c.sessions.list_sessions(Session.session_id == sid)
check(total == 1 and [s.session_id for s in listed] == [sid], f"filtered by id: {total}")
# ListSessions leaves the options out unless with_task_options is set (the client does not).
total, listed = c.sessions.list_sessions(
    (Session.status == SessionStatus.RUNNING) & (Session.session_id == sid)
)
check(total == 1, f"filtered by status RUNNING and id: {total}")
total, _ = c.sessions.list_sessions(
    (Session.status == SessionStatus.CANCELLED) & (Session.session_id == sid)
)
check(total == 0, f"filtered by status CANCELLED and id: {total}")
done()
