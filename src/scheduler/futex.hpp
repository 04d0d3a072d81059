// Futex wait/wake on a 32-bit atomic (Linux). Used to park idle workers and
// plain threads that wait on a weft primitive.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>

namespace weft::detail {

// futex_wait() sleeps while *word == expected, until woken or the deadline.
void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt) noexcept;
// futex_wake() wakes up to n threads sleeping on word.
void futex_wake(std::atomic<std::uint32_t>& word, int n = 1) noexcept;

}  // namespace weft::detail
