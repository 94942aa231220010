# Cross-compiling for the Jetson Nano's CPU (4x Cortex-A57, ARMv8.0-A: NEON, no dot product)
# with Debian's multiarch cross toolchain (g++-aarch64-linux-gnu), tests run under qemu-user:
#
#     cmake -S . -B build-arm -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/jetson-nano.cmake
#     cmake --build build-arm -j2 && ctest --test-dir build-arm --output-on-failure
#
# Libraries and programs come from the aarch64 side (/usr/aarch64-linux-gnu). edgeq's
# dependencies (xsimd, xtl, xtensor, Boost headers, Catch2) are header-only, so the host's
# packages and their CMake configs serve the target as they are: their headers sit in
# /usr/include, which Debian's cross g++ searches last, after the aarch64 libc and libstdc++
# headers, so host headers never shadow target ones. Do not rely on this for a compiled
# library: host package configs are found too (find-root mode BOTH for packages), and a
# compiled library's config must come from an aarch64 install (set <Pkg>_DIR or
# CMAKE_PREFIX_PATH to it).
#
# Cache variables: EDGEQ_CROSS_TRIPLE (aarch64-linux-gnu), EDGEQ_CROSS_ROOT (/usr/<triple>),
# EDGEQ_CROSS_CPU (cortex-a57, for -mtune and qemu's -cpu).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(EDGEQ_CROSS_TRIPLE "aarch64-linux-gnu" CACHE STRING "GNU triple of the cross toolchain")
set(EDGEQ_CROSS_ROOT "/usr/${EDGEQ_CROSS_TRIPLE}" CACHE PATH "The target's libraries and loader (qemu -L)")
set(EDGEQ_CROSS_CPU "cortex-a57" CACHE STRING "Target core: -mtune and qemu -cpu")

set(CMAKE_C_COMPILER "${EDGEQ_CROSS_TRIPLE}-gcc")
set(CMAKE_CXX_COMPILER "${EDGEQ_CROSS_TRIPLE}-g++")

# ARMv8.0-A exactly: nothing the A57 lacks (dotprod, fp16 arithmetic, LSE atomics) can be emitted.
set(CMAKE_C_FLAGS_INIT "-march=armv8-a -mtune=${EDGEQ_CROSS_CPU}")
set(CMAKE_CXX_FLAGS_INIT "-march=armv8-a -mtune=${EDGEQ_CROSS_CPU}")

# Target libraries from the cross root only; build tools from the host; headers and package
# configs from both (the header-only dependencies are installed for the host only).
set(CMAKE_FIND_ROOT_PATH "${EDGEQ_CROSS_ROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# Debian installs some header-only configs (xsimd, xtensor, Boost) under the host's multiarch
# directory, /usr/lib/<host triple>/cmake, which find_package searches only for the target's
# triple: name it as a prefix (find_package looks in <prefix>/<name>*/).
if(CMAKE_HOST_SYSTEM_PROCESSOR)
  set(_edgeq_host_cpu "${CMAKE_HOST_SYSTEM_PROCESSOR}")
else()
  execute_process(COMMAND uname -m OUTPUT_VARIABLE _edgeq_host_cpu OUTPUT_STRIP_TRAILING_WHITESPACE)
endif()
if(_edgeq_host_cpu STREQUAL "arm64")
  set(_edgeq_host_cpu aarch64)
endif()
if(IS_DIRECTORY "/usr/lib/${_edgeq_host_cpu}-linux-gnu/cmake")
  list(APPEND CMAKE_PREFIX_PATH "/usr/lib/${_edgeq_host_cpu}-linux-gnu/cmake")
  list(REMOVE_DUPLICATES CMAKE_PREFIX_PATH)
endif()
unset(_edgeq_host_cpu)

# Run target programs (tests, try_run) under qemu-user as a Cortex-A57, with the cross root as
# the loader's prefix so dynamically linked binaries find ld-linux-aarch64.so.1, libstdc++ and
# libc. (qemu-user-static's binary works the same; static linking, -static, would need no -L.)
if(NOT CMAKE_CROSSCOMPILING_EMULATOR)
  find_program(EDGEQ_QEMU_AARCH64 NAMES qemu-aarch64 qemu-aarch64-static)
  if(EDGEQ_QEMU_AARCH64)
    set(CMAKE_CROSSCOMPILING_EMULATOR "${EDGEQ_QEMU_AARCH64};-cpu;${EDGEQ_CROSS_CPU};-L;${EDGEQ_CROSS_ROOT}")
  endif()
endif()
