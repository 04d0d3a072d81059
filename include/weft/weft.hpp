// weft: structured concurrency with stackful fibers and asynchronous
// interruption. The umbrella header.
#pragma once

#include <weft/cause.hpp>
#include <weft/exit.hpp>
#include <weft/fiber.hpp>
#include <weft/fiber_id.hpp>
#include <weft/interrupt.hpp>
#include <weft/interrupted.hpp>
#include <weft/on_exit.hpp>
#include <weft/runtime.hpp>
#include <weft/scope.hpp>
#include <weft/this_fiber.hpp>
