"""Whether a test may mount a small tmpfs of its own, to fill a real disk."""

import shutil
import subprocess
import sys


def can_mount_private_tmpfs() -> bool:
    """A tmpfs in a private mount namespace (`unshare -m`, needs CAP_SYS_ADMIN), Linux only."""
    if sys.platform != "linux" or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"],
                           capture_output=True)
    return probe.returncode == 0
