// weft: structured concurrency with stackful fibers and asynchronous
// interruption. The umbrella header.
#pragma once

#include <weft/all.hpp>
#include <weft/blocking.hpp>
#include <weft/cause.hpp>
#include <weft/channel.hpp>
#include <weft/condition_variable.hpp>
#include <weft/deadline.hpp>
#include <weft/deferred.hpp>
#include <weft/exit.hpp>
#include <weft/fiber.hpp>
#include <weft/fiber_id.hpp>
#include <weft/fiber_local.hpp>
#include <weft/interrupt.hpp>
#include <weft/interrupted.hpp>
#include <weft/io.hpp>
#include <weft/latch.hpp>
#include <weft/mutex.hpp>
#include <weft/on_exit.hpp>
#include <weft/race.hpp>
#include <weft/runtime.hpp>
#include <weft/scope.hpp>
#include <weft/semaphore.hpp>
#include <weft/signals.hpp>
#include <weft/steps.hpp>
#include <weft/this_fiber.hpp>
#include <weft/timeout.hpp>
