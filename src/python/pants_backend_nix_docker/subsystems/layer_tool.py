from __future__ import annotations

from pants.backend.python.subsystems.python_tool_base import LockfileRules, PythonToolBase
from pants.backend.python.target_types import EntryPoint
from pants.util.strutil import softwrap


class NixDockerLayerTool(PythonToolBase):
    options_scope = "nix-docker-layer-tool"
    name = "nix-docker-layer-tool"
    help = softwrap(
        """
        The pinned wheels of the two programs Pants processes run: the store-layer tool (writes
        the layers of store paths) and the image tool (root-filesystem layers, archives, base
        images, pushes).

        Both run from PEXes built from this lockfile, so the compressors (libdeflate and ISA-L
        for gzip, zstandard for zstd) are pinned wheels: the compressed bytes, and so the layer
        digests, are the same on every machine, whatever zlib the host has.
        """
    )

    # deflate 0.8.1 is the last release with CPython 3.9 wheels; 0.9.0 bundles the same
    # libdeflate and gives the same bytes.
    default_version = "deflate==0.8.1"
    default_extra_requirements = ["isal==1.9.1", "zstandard==0.25.0"]
    default_main = EntryPoint("pants_backend_nix_docker.oci.store_layer_tool")
    register_interpreter_constraints = True
    default_interpreter_constraints = ["CPython>=3.9,<3.12"]
    default_lockfile_resource = ("pants_backend_nix_docker.subsystems", "layer_tool.lock")
    lockfile_rules_type = LockfileRules.SIMPLE
