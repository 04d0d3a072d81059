// The plain-thread side of the parker interface (src/wait/wait_queue.cpp).
#pragma once

#include <weft/detail/wait_queue.hpp>

namespace weft::detail {

// this_thread_parker() is this OS thread's parker: it blocks the thread on a
// futex and is never interrupted. current_parker() returns it outside fibers.
WaitOwner& this_thread_parker() noexcept;

}  // namespace weft::detail
