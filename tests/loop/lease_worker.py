"""A separate process that tries to take a model's loop lease: ``acquire SYNC_DIR INDEX``.

Started by ``tests.conftest.run_together``, so every worker asks at the same moment; it prints
``held`` or ``refused``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "registry"))

from worker_sync import inside, wait_for_all  # noqa: E402 - found through the path above

from amploop.registry import Store  # noqa: E402


def main() -> None:
    mode, sync_dir, index = sys.argv[1], sys.argv[2], sys.argv[3]
    if mode != "acquire":
        raise SystemExit(f"unknown mode {mode}")
    with Store.open() as store:
        wait_for_all(sync_dir)
        with inside(sync_dir, index):
            lease = store.acquire_lease("rain", f"controller-{index}", ttl_s=60)
    print("held" if lease is not None else "refused")


if __name__ == "__main__":
    main()
