# Run after each link of the doctest runner (tests/CMakeLists.txt): writes OUT,
# a ctest file with one test per doctest case, named after the case, labelled
# `unit`. Like doctest_discover_tests (Debian's doctest 2.4.9), which however cuts a
# case name at each ';' (CMake's list separator) into names of no case; lines
# are read here one by one, so a name may hold any character.
# -D RUNNER=the test runner  -D OUT=the ctest file  -D WORKDIR=the tests' directory
execute_process(COMMAND "${RUNNER}" --list-test-cases --no-intro=true
  OUTPUT_VARIABLE out RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${RUNNER} --list-test-cases failed (${rc})")
endif()
set(script "")
set(count 0)
while(NOT out STREQUAL "")
  string(FIND "${out}" "\n" end)
  if(end EQUAL -1)
    set(line "${out}")
    set(out "")
  else()
    string(SUBSTRING "${out}" 0 ${end} line)
    math(EXPR next "${end} + 1")
    string(SUBSTRING "${out}" ${next} -1 out)
  endif()
  # doctest frames the list with "=====" lines and a "[doctest] ..." count
  if(line STREQUAL "" OR line MATCHES "^=+$" OR line MATCHES "^\\[doctest\\] ")
    continue()
  endif()
  # doctest's --test-case takes a comma-separated list: a ',' in a name is "\,".
  string(REPLACE "," "\\," filter "${line}")
  # Bracket arguments keep every character. A filter that matched no case would
  # pass in doctest ("test cases: 0 |"): that output fails the test.
  string(APPEND script
    "add_test([==[${line}]==] \"${RUNNER}\" [==[--test-case=${filter}]==] --no-intro=true)\n"
    "set_tests_properties([==[${line}]==] PROPERTIES LABELS unit TIMEOUT 300\n"
    "  WORKING_DIRECTORY \"${WORKDIR}\" FAIL_REGULAR_EXPRESSION \"test cases: +0 [|]\")\n")
  math(EXPR count "${count} + 1")
endwhile()
if(count EQUAL 0)
  message(FATAL_ERROR "${RUNNER} lists no test case")
endif()
file(WRITE "${OUT}" "${script}")
