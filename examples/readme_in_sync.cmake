# cmake -DREADME=... -DEXAMPLE=... -P readme_in_sync.cmake: the README must contain the example verbatim.
file(READ "${README}" readme)
file(READ "${EXAMPLE}" example)
string(FIND "${readme}" "${example}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "README.md no longer shows ${EXAMPLE} as it is: paste the file into its code block")
endif()
