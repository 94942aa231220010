# cmake -DCXX=... -DINCLUDE=... -DSOURCE=... [-DEXPECT=...] -DSHOULD_FAIL=ON|OFF -P check.cmake
# CUDA cases: -DCXX=<nvcc> -DNVCC_FLAGS=<host compiler, arch> -DOBJECT=<scratch .o> (nvcc has no
# -fsyntax-only; a static_assert fires in its front end, before any code is generated).
if(DEFINED OBJECT)
  separate_arguments(flags UNIX_COMMAND "${NVCC_FLAGS}")
  execute_process(COMMAND ${CXX} -std=c++14 ${flags} -I${INCLUDE} -c ${SOURCE} -o ${OBJECT}
                  RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_VARIABLE out)
  set(err "${err}${out}")
else()
  execute_process(COMMAND ${CXX} -std=c++14 -fsyntax-only -I${INCLUDE} ${SOURCE}
                  RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_VARIABLE out)
endif()
if(SHOULD_FAIL)
  if(rc EQUAL 0)
    message(FATAL_ERROR "${SOURCE} compiled, but it is a misuse that must be refused")
  endif()
  string(FIND "${err}" "${EXPECT}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "${SOURCE} failed to compile without the expected message '${EXPECT}':\n${err}")
  endif()
elseif(NOT rc EQUAL 0)
  message(FATAL_ERROR "${SOURCE} must compile:\n${err}")
endif()
