# cmake -P script behind the `downstream` test (see CMakeLists.txt for the arguments).
cmake_minimum_required(VERSION 3.18)

function(step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "downstream: ${what} failed (${rc})")
  endif()
endfunction()

set(prefix "${WORK_DIR}/prefix")
set(build "${WORK_DIR}/build")
# Start clean: a stale prefix or cache would hide a broken install.
file(REMOVE_RECURSE "${WORK_DIR}")

# The library's component only: the package must not depend on the programs being built.
message(STATUS "downstream: installing ${EDGEQ_BUILD_DIR} (component Development) into ${prefix}")
set(config_arg "")
if(CONFIG)
  set(config_arg --config "${CONFIG}")
endif()
step("install" ${CMAKE_COMMAND} --install "${EDGEQ_BUILD_DIR}" --prefix "${prefix}" --component Development ${config_arg})

set(args -S "${PROJECT_DIR}" -B "${build}" -G "${GENERATOR}" "-DCMAKE_PREFIX_PATH=${prefix}"
         -DCMAKE_BUILD_TYPE=Release)
if(MAKE_PROGRAM)
  list(APPEND args "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()
if(TOOLCHAIN_FILE)
  # The toolchain names the compiler (and the emulator).
  list(APPEND args "-DCMAKE_TOOLCHAIN_FILE=${TOOLCHAIN_FILE}")
else()
  list(APPEND args "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
endif()
if(EMULATOR)
  # A list cannot travel as one -D argument of execute_process: pass it in an initial cache.
  string(REPLACE "|" ";" emulator "${EMULATOR}")
  file(WRITE "${WORK_DIR}/init.cmake" "set(CMAKE_CROSSCOMPILING_EMULATOR \"${emulator}\" CACHE STRING \"\")\n")
  list(APPEND args -C "${WORK_DIR}/init.cmake")
endif()
step("configure" ${CMAKE_COMMAND} ${args})
step("build" ${CMAKE_COMMAND} --build "${build}" --config Release)

if(CROSSCOMPILING AND NOT EMULATOR)
  # Matched by the test's SKIP_REGULAR_EXPRESSION.
  message("downstream: SKIPPED running: a cross build without CMAKE_CROSSCOMPILING_EMULATOR")
  return()
endif()
# ctest runs the consumer's test, through the emulator when there is one.
execute_process(COMMAND ${CMAKE_CTEST_COMMAND} -C Release -V WORKING_DIRECTORY "${build}"
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "downstream: the consumer's test failed (${rc})")
endif()
