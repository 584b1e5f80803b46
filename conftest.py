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


# Ignored by git so a stray one is never committed, and so looked for by name here.
_IGNORED_OUTPUTS = ("mlruns", ".amploop")


def pytest_sessionstart(session):
    session.config._untracked_before = _untracked(session.config.rootpath)
    session.config._ignored_before = {n for n in _IGNORED_OUTPUTS if (session.config.rootpath / n).exists()}


def pytest_sessionfinish(session, exitstatus):
    root = session.config.rootpath
    ignored_before = getattr(session.config, "_ignored_before", set())
    new_ignored = [n for n in _IGNORED_OUTPUTS if n not in ignored_before and (root / n).exists()]
    before = getattr(session.config, "_untracked_before", None)
    after = _untracked(root) if before is not None else None
    if before is None or after is None:
        after = before = set()
    new = sorted(after - before) + [f"{n}/" for n in new_ignored]
    if new:
        shown = ", ".join(new[:10]) + (f" and {len(new) - 10} more" if len(new) > 10 else "")
        print(f"\nerror: the tests wrote into the source tree: {shown}")
        session.exitstatus = 1
