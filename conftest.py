# Alembic's environment script only runs inside a migration; doctest collection must skip it.
collect_ignore_glob = ["amploop/registry/migrations/*"]


# Tests never write into the source tree: a file that appears there during the run fails it.
def _untracked(root):
    import subprocess

    try:
        done = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=all"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return {line[3:] for line in done.stdout.splitlines() if line.startswith("?? ")}


def pytest_sessionstart(session):
    session.config._untracked_before = _untracked(session.config.rootpath)


def pytest_sessionfinish(session, exitstatus):
    before = getattr(session.config, "_untracked_before", None)
    after = _untracked(session.config.rootpath) if before is not None else None
    if before is None or after is None:
        return
    new = sorted(after - before)
    if new:
        shown = ", ".join(new[:10]) + (f" and {len(new) - 10} more" if len(new) > 10 else "")
        print(f"\nerror: the tests wrote into the source tree: {shown}")
        session.exitstatus = 1
