# Cython looks up the .pxd of module fastvrrp._wheel as fastvrrp/_wheel.pxd on the
# include path (ext/); the declarations themselves live beside the .pyx.
include "../_wheel.pxd"
