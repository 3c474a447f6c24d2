"""worker/unit_of_work.ForkGuard: a fork waits until no thread is inside a unit of work, and no
thread enters one while the fork runs (SQLite's mutexes must not be held at a fork)."""
import threading

from worker.unit_of_work import ForkGuard


def test_a_fork_waits_for_the_threads_inside_a_unit_of_work():
    guard, inside, release, forked = ForkGuard(), threading.Event(), threading.Event(), threading.Event()

    def hold():
        with guard.held():
            inside.set()
            release.wait(10)

    def fork():
        guard.before_fork()
        forked.set()
        guard.after_fork_in_parent()

    holder = threading.Thread(target=hold)
    holder.start()
    assert inside.wait(5)
    forker = threading.Thread(target=fork)
    forker.start()
    assert not forked.wait(0.3)  # held off while the other thread is inside
    release.set()
    assert forked.wait(5)
    holder.join(5), forker.join(5)


def test_no_thread_enters_a_unit_of_work_while_a_fork_runs():
    guard, entered = ForkGuard(), threading.Event()

    def enter():
        with guard.held():
            entered.set()

    guard.before_fork()
    thread = threading.Thread(target=enter)
    thread.start()
    assert not entered.wait(0.3)
    guard.after_fork_in_parent()
    assert entered.wait(5)
    thread.join(5)
