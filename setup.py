"""Build the Cython accelerators: every ext/fastvrrp/_NAME.pyx becomes fastvrrp._NAME.

The sources sit in ext/fastvrrp/ so that `cimport fastvrrp._NAME` finds the .pxd
files through the include path, without .pxd files inside the Python package.
"""
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).parent
extensions = [
    Extension(
        f"fastvrrp.{pyx.stem}",
        [str(pyx.relative_to(HERE))],
        include_dirs=["ext"],
        extra_compile_args=["-O2"],
    )
    for pyx in sorted((HERE / "ext").glob("**/_*.pyx"))
]

setup(
    ext_modules=cythonize(
        extensions,
        include_path=["ext"],
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    ),
)
