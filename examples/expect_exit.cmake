# cmake -DEXIT=<code> [-DMATCH=<regex>] "-DCOMMAND=prog|arg|arg" -P expect_exit.cmake
# Runs the command; fails unless it exits with EXIT and its stderr matches MATCH.
string(REPLACE "|" ";" cmd "${COMMAND}")
execute_process(COMMAND ${cmd} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc STREQUAL "${EXIT}")
  message(FATAL_ERROR "exit code ${rc}, expected ${EXIT}\nstderr: ${err}")
endif()
if(DEFINED MATCH AND NOT err MATCHES "${MATCH}")
  message(FATAL_ERROR "stderr does not match '${MATCH}':\n${err}")
endif()
