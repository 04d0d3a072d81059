#!/usr/bin/env bash
# The whole suite, in four timed stages:
#   dev   Debug + WEFT_ASSERT: build, ctest
#   asan  ASan + UBSan:        build, ctest
#   tsan  TSan:                build, ctest
#   fuzz  clang, ASan + UBSan: build fuzz_program, fuzz it for 60 s
# Usage: scripts/test.sh [--quick]      (--quick: the dev stage only)
#
# Each stage leaves out the ctest labels matching the regular expression in
# WEFT_CTEST_EXCLUDE_DEV, _ASAN, _TSAN or _FUZZ (passed to ctest -LE). Every
# test carries its file's name as a label (test_scheduler_stress,
# example_tour, test_install_consumer, example, fuzz_program), e.g.
#   WEFT_CTEST_EXCLUDE_TSAN='^(test_million|example_tour)$' scripts/test.sh
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
  ctest --preset "$preset" "${exclude[@]}"
  summary+=("$(printf '%-5s passed in   %5ds' "$preset" $((SECONDS - stage_start)))")
  echo "==== stage $preset passed in $((SECONDS - stage_start))s ===="
  current=""
}

stage dev DEV

if ((quick)); then
  summary+=("asan  skipped (--quick)" "tsan  skipped (--quick)" "fuzz  skipped (--quick)")
  exit 0
fi

# test_million (1,000,000 parked fibers, ~5 GB) runs in the dev stage only:
# under the sanitizers' shadow memory and slow paths it would take most of
# the CI budget. Override with WEFT_CTEST_EXCLUDE_ASAN/TSAN.
: "${WEFT_CTEST_EXCLUDE_ASAN:=^test_million$}"
: "${WEFT_CTEST_EXCLUDE_TSAN:=^test_million$}"
export WEFT_CTEST_EXCLUDE_ASAN WEFT_CTEST_EXCLUDE_TSAN

# test_replay runs 100,000 random programs in the dev stage; under the
# sanitizers (5-15x slower) 20,000 each, unless WEFT_SANITIZER_SCENARIOS says.
export WEFT_STRESS_SCENARIOS="${WEFT_SANITIZER_SCENARIOS:-20000}"

export ASAN_OPTIONS=detect_stack_use_after_return=1:detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
stage asan ASAN

export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
if [[ -f tests/tsan.supp ]]; then
  TSAN_OPTIONS+=":suppressions=$PWD/tests/tsan.supp"
fi
stage tsan TSAN

# The fuzz preset builds only the library, tests/support and the fuzzer, and
# its ctest runs the fuzz_program test alone (tests/fuzz/README.md).
export ASAN_OPTIONS=detect_stack_use_after_return=1:detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
stage fuzz FUZZ
