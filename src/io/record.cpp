// The process-wide table of IoRecords (record.hpp). fd numbers are a
// process-wide resource, so their records are too: a two-level table indexed
// by fd number, chunks allocated on first use and never freed (the table is
// reachable from a static, so leak checkers do not report it).
#include "io/record.hpp"

#include <weft/detail/assert.hpp>

#include <array>
#include <memory>
#include <stdexcept>
#include <string>

namespace weft::detail {

namespace {
constexpr int kChunkBits = 10;
constexpr std::size_t kChunkSize = std::size_t{1} << kChunkBits;
// 2^20 fds: Linux's default fs.nr_open, the most any process can have.
constexpr std::size_t kChunks = std::size_t{1} << 10;

struct Chunk {
  std::array<IoRecord, kChunkSize> records;
};

std::array<std::atomic<Chunk*>, kChunks> g_chunks{};
}  // namespace

IoRecord& record_for(int fd) {
  WEFT_ASSERT(fd >= 0, "record_for({})", fd);
  const auto index = static_cast<std::size_t>(fd);
  const std::size_t c = index >> kChunkBits;
  if (c >= kChunks)
    throw std::out_of_range("weft::io: fd " + std::to_string(fd) + " is beyond 2^20");
  // acquire: the chunk's records were constructed before it was published.
  Chunk* chunk = g_chunks[c].load(std::memory_order_acquire);
  if (chunk == nullptr) {
    auto fresh = std::make_unique<Chunk>();
    if (g_chunks[c].compare_exchange_strong(chunk, fresh.get(), std::memory_order_acq_rel))
      chunk = fresh.release();  // ours is in; otherwise `chunk` is the winner's
  }
  return chunk->records[index & (kChunkSize - 1)];
}

void forget_reactor(Reactor* r) noexcept {
  for (auto& slot : g_chunks) {
    Chunk* chunk = slot.load(std::memory_order_acquire);
    if (chunk == nullptr) continue;
    for (IoRecord& rec : chunk->records) {
      Reactor* expected = r;
      rec.reactor.compare_exchange_strong(expected, nullptr, std::memory_order_acq_rel);
    }
  }
}

}  // namespace weft::detail
