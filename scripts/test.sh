#!/usr/bin/env bash
# The whole suite, in four timed stages (each prints its build and ctest time):
#   dev   Debug + WEFT_ASSERT: build, ctest
#   asan  ASan + UBSan:        build, ctest
#   tsan  TSan:                build, ctest
#   fuzz  clang, ASan + UBSan: build fuzz_program, fuzz it for 60 s; test_tls_migrate
# Usage: scripts/test.sh [--quick]      (--quick: the dev stage only)
#
# Every stage runs every test; a few heavy ones run smaller (or are skipped)
# under the sanitizers (tests/support/scale.hpp, test::scaled() and
# test::race_rounds(); each says why):
#                                     dev          asan         tsan
#   test_million (parked fibers)      1,000,000    skipped      skipped
#   test_stack_pool Large (stacks)    1,000,000    100,000      100,000
#   test_replay ReplayStress          100,000      5,000        500
#   test_context create_exit_cycles   20,000       20,000       2,000
#   test_interrupt_stress scenarios   1,200        1,200        240
#     (per worker count)
#   race-hunting loops                full         full         a fifth, >= 50
#     (test::race_rounds: the interrupt, deadline and destroy races of the
#     sync primitives, test_channel and test_interrupt_delivery, and the
#     loops of test_exit_switch and test_scheduler's injections; TSan
#     reports a race from one execution, and a round costs 7-10x ASan's there)
#   test_scheduler fork tree fibers   11,111       11,111       2,047
#   test_scheduler parker rounds      20,000       2,000        400
#   test_dump collapse (parked)       1,000        300          300
#   example beast_get (Beast, Asio)   built, run   not built    not built
#     (two minutes of Beast templates per sanitizer stage; the Asio bridge
#     is covered under both sanitizers by test_asio)
#   test_docs (the docs' snippets)    built, run   not built    not built
#   weft_header_check (41 headers)    built        not built    not built
#     (compile-only checks, or demos the tests cover: CI time)
# Every test process is held to a peak-RSS budget, 2 GiB under a sanitizer
# and 6 GiB in dev (WEFT_TEST_RSS_BUDGET_MB overrides it), and to a ctest
# TIMEOUT of 600 s. In dev the two million-scale tests (~4.7 GB each) run
# alone (RUN_SERIAL); ctest runs everything else two at a time.
# Time: the CI budget is 40 minutes on 2 busy cores. Stop 22's CI took 58;
# most of it was compiling the tests under the sanitizers, and TSan's race
# loops. Since then (docs/performance.md, "Round 6") the tests, fixtures and
# examples compile with -g1 and, under ASan, without UBSan's alignment+null
# check (cmake/sanitizers.cmake: the library keeps -g and every check), the
# tests share one precompiled header (WEFT_TEST_PCH), and TSan runs a fifth
# of the race-hunting rounds. A fresh clone at round 6, the machine
# otherwise idle: dev 529 s (build 377), asan 812 s (build 475), tsan 670 s
# (build 290), fuzz 155 s; 2166 s in all. Before, a fresh clone under load
# took dev 1326, asan 1381 and tsan 1802 s.
# WEFT_STRESS_SCENARIOS / WEFT_SEED set the count and seed of both stress
# tests in every stage; WEFT_SANITIZER_SCENARIOS sets WEFT_STRESS_SCENARIOS
# for the asan and tsan stages only.
#
# Each stage leaves out the ctest labels matching the regular expression in
# WEFT_CTEST_EXCLUDE_DEV, _ASAN, _TSAN or _FUZZ (passed to ctest -LE). Every
# test carries its file's name as a label (test_scheduler_stress,
# example_tour, test_install_consumer, example, fuzz_program), e.g.
#   WEFT_CTEST_EXCLUDE_TSAN='^(test_replay|example_tour)$' scripts/test.sh
# Any failing stage stops the script with a non-zero exit and the summary.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
  esac
done

./scripts/deps.sh

summary=()
current=""

# On any exit: one line per stage (passed, FAILED or skipped) and the verdict.
report() {
  local rc=$?
  if ((rc != 0)) && [[ -n "$current" ]]; then
    summary+=("$(printf '%-5s FAILED after %5ds (exit %d)' "$current" $((SECONDS - stage_start)) "$rc")")
  fi
  echo "==== summary ===="
  if ((${#summary[@]})); then printf '%s\n' "${summary[@]}"; fi
  if ((rc == 0)); then echo "test.sh: all stages passed"; else echo "test.sh: FAILED (exit $rc)" >&2; fi
}
trap report EXIT

# exclude_args <STAGE>: ctest -LE <regex> from WEFT_CTEST_EXCLUDE_<STAGE>, if set.
exclude_args() {
  local var="WEFT_CTEST_EXCLUDE_$1"
  if [[ -n "${!var:-}" ]]; then
    printf '%s\n' -LE "${!var}"
  fi
}

# stage <preset> <STAGE>: configure, build and test one preset, timed. The
# sanitizer options come from the caller's environment.
stage() {
  local preset=$1 exclude
  current=$preset
  stage_start=$SECONDS
  mapfile -t exclude < <(exclude_args "$2")
  echo "==== stage $preset${exclude[*]:+ (ctest ${exclude[*]})} ===="
  cmake --preset "$preset"
  cmake --build --preset "$preset" -j2
  local built=$((SECONDS - stage_start))
  ctest --preset "$preset" "${exclude[@]}"
  local took=$((SECONDS - stage_start))
  summary+=("$(printf '%-5s passed in   %5ds (build %ds, ctest %ds)' "$preset" "$took" "$built" $((took - built)))")
  echo "==== stage $preset passed in ${took}s (build ${built}s, ctest $((took - built))s) ===="
  current=""
}

stage dev DEV

if ((quick)); then
  summary+=("asan  skipped (--quick)" "tsan  skipped (--quick)" "fuzz  skipped (--quick)")
  exit 0
fi

# The tests scale themselves under the sanitizers (see the table above). An
# explicit WEFT_SANITIZER_SCENARIOS still sets both stress tests' count.
if [[ -n "${WEFT_SANITIZER_SCENARIOS:-}" ]]; then
  export WEFT_STRESS_SCENARIOS="$WEFT_SANITIZER_SCENARIOS"
fi

export ASAN_OPTIONS=detect_stack_use_after_return=1:detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
stage asan ASAN

export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
if [[ -f tests/tsan.supp ]]; then
  TSAN_OPTIONS+=":suppressions=$PWD/tests/tsan.supp"
fi
stage tsan TSAN

# The fuzz preset builds only the library, tests/support, the fuzzer and
# test_tls_migrate (thread_local reads across migrating switches, which clang
# at -O1 is the compiler to check), and its ctest runs those two alone
# (tests/fuzz/README.md).
export ASAN_OPTIONS=detect_stack_use_after_return=1:detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
stage fuzz FUZZ
