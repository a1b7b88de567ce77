"""Evaluate Docker/OCI seccomp profiles the way the container runtime does.

The public API, used by ``fanwatch seccomp`` and by ``fanwatch doctor``:

- :func:`load_profile` / :func:`loads_profile` -> :class:`Profile`, checked
  as runc would load it (ProfileError with the place in the file if not);
- :meth:`Profile.evaluate` (syscall, caps, arch, kernel, args) ->
  :class:`Verdict`: allowed, refused with which errno, or killed, by which
  rule, and whether argument values matter;
- :func:`resolve` (profile dict, caps, arch, kernel) -> the OCI
  ``linux.seccomp`` object a runtime loads;
- :func:`patch_for` (profile dict, job) -> (patched dict, changes): the
  smallest edit that lets a fanwatch job run;
- :data:`JOB_SYSCALLS`: the syscalls each fanwatch job needs, and
  :func:`check_job` to evaluate them.
"""

from .jobs import JOB_CAPS, JOB_SYSCALLS, JobReport, Need, check_job
from .names import DOCKER_DEFAULT_CAPS, capability_set, native_arch, parse_kernel
from .patch import Change, patch_for
from .profile import Condition, Context, Profile, Rule, load_profile, loads_profile
from .verdict import Verdict

__all__ = [
    "DOCKER_DEFAULT_CAPS",
    "JOB_CAPS",
    "JOB_SYSCALLS",
    "Change",
    "Condition",
    "Context",
    "JobReport",
    "Need",
    "Profile",
    "Rule",
    "Verdict",
    "capability_set",
    "check_job",
    "load_profile",
    "loads_profile",
    "native_arch",
    "parse_kernel",
    "patch_for",
    "resolve",
]


def resolve(profile_dict, caps=DOCKER_DEFAULT_CAPS, arch=None, kernel=None) -> dict:
    """The OCI ``linux.seccomp`` object for *profile_dict* (a decoded
    profile) as moby builds it for bounding set *caps*, *arch* (default:
    this machine) and *kernel* (default: the running one).

    Raises ProfileError for a profile the runtime would refuse.
    """
    return Profile.from_dict(profile_dict).resolve(caps, arch, kernel)
