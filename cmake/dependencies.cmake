# System dependencies only: nothing is downloaded at build time.
# Debian 12: libboost-context1.81-dev libfmt-dev googletest libbenchmark-dev
# (scripts/deps.sh installs them).

find_package(Threads REQUIRED)
find_package(fmt CONFIG REQUIRED)
# BoostConfigVersion.cmake matches EXACT only on the full "1.81.0" spelling.
find_package(Boost 1.81.0 EXACT REQUIRED COMPONENTS context CONFIG)

if(WEFT_DEVELOPER_MODE)
  find_package(GTest CONFIG REQUIRED)
  find_package(benchmark CONFIG REQUIRED)
  include(GoogleTest)
endif()
