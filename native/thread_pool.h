// A small persistent thread pool for splitting one matrix multiply across cores.
//
// The caller always takes part, and work is handed out in chunks from a shared
// counter, so a worker the OS has not scheduled yet (a busy machine) costs
// nothing: the others take its chunks, and the caller withdraws the offer
// instead of waiting for it. Idle workers poll briefly after each job (a
// forward pass issues matmuls back to back, and waking a sleeping thread costs
// tens of microseconds) and then sleep, so an idle process uses no CPU.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace glassformer {

class ThreadPool {
 public:
  // A job: called as task(context, chunk) for every chunk in [0, chunks).
  using Task = void (*)(const void* context, int64_t chunk);

  ThreadPool() = default;
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  ~ThreadPool();

  // Threads that may work on one job, counting the caller; at least 1.
  int threads() const { return threads_; }
  void set_threads(int threads);

  // Who takes which chunk. kInOrder: every thread takes the next chunk from
  // the front. kHelpersFromBack: the caller takes chunks from the front and
  // the helpers from the back, so each thread's first chunks are known before
  // the job starts (a helper can have them in its cache already; see
  // prefetch_when_idle) while the two ends still meet wherever the faster
  // thread got to.
  enum class Order { kInOrder, kHelpersFromBack };

  // Runs every chunk once, on up to min(threads(), max_threads) threads, and
  // returns when all are done. If another thread is already using the pool
  // (two Node worker threads), runs them all on the caller.
  void run(int64_t chunks, Task task, const void* context, int max_threads = 1 << 30, Order order = Order::kInOrder);

  // True while the helpers are still polling after the last job (they do for
  // a while, then sleep): a job posted now starts on them within a
  // microsecond or two, with no wake-up.
  bool helpers_polling() const;

  // A range of memory to pull into the cache.
  struct Span {
    const char* begin;
    int64_t bytes;
  };
  static constexpr int kMaxSpans = 8;

  // Asks the first helper, while it waits for the next job, to prefetch these
  // spans (up to kMaxSpans) into its cache, in order, a few KB at a time: the
  // memory bus is otherwise idle between decode products. The helper stops
  // as soon as a job is posted (and goes on after it) or another request (or
  // cancel_prefetch) arrives, so run() never waits for it more than one piece. Prefetch
  // instructions never fault, so a span whose memory has been freed since is
  // harmless. Ignored while the helper sleeps (no product for a while).
  void prefetch_when_idle(const Span* spans, int count);
  void cancel_prefetch() { prefetch_when_idle(nullptr, 0); }

  // Cuts [0, count) into `chunks` contiguous ranges [count·c/chunks,
  // count·(c+1)/chunks) and calls body(first, end) for each through run().
  template <class Body>
  void run_ranges(int64_t count, int64_t chunks, const Body& body) {
    struct Ranges {
      const Body* body;
      int64_t count;
      int64_t chunks;
    } ranges{&body, count, chunks};
    run(
        chunks,
        [](const void* context, int64_t chunk) {
          const Ranges& r = *static_cast<const Ranges*>(context);
          (*r.body)(r.count * chunk / r.chunks, r.count * (chunk + 1) / r.chunks);
        },
        &ranges);
  }

 private:
  // Per-worker handshake for one job: the caller posts it, then either the
  // worker starts it or the caller cancels it, whichever comes first.
  enum SlotState : uint64_t { kPosted = 1, kRunning = 2, kDone = 3, kCancelled = 4 };
  static uint64_t slot_value(uint64_t generation, SlotState state) { return generation << 3 | state; }

  struct Worker {
    std::thread thread;
    std::atomic<uint64_t> slot{0};
  };

  // The first helper (`prefetcher`) also serves prefetch_when_idle.
  void worker_loop(Worker* self, uint64_t seen, bool prefetcher);
  void work(bool from_back);  // takes chunks until none are left
  // Where the prefetching helper is in the latest request it saw: a job that
  // interrupts it (a decode step's attention, between two products) leaves
  // the rest to be fetched after it; a newer request starts over.
  struct PrefetchProgress {
    uint64_t request = 0;
    Span spans[kMaxSpans] = {};
    int count = 0;
    int span = 0;
    int64_t offset = 0;
  };
  // Prefetches the rest of the latest request until a job is posted (the
  // generation moves past `generation`) or a newer request arrives.
  void prefetch_spans(uint64_t generation, PrefetchProgress* progress);
  void stop_workers();

  std::vector<std::unique_ptr<Worker>> workers_;
  int threads_ = 1;
  std::mutex busy_;  // one job at a time

  std::mutex wake_mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  // When the last job ended (steady_clock ticks), for helpers_polling.
  std::atomic<int64_t> last_job_end_{0};
  std::atomic<bool> stopping_{false};

  // The current job, written before its generation is published.
  Task task_ = nullptr;
  const void* context_ = nullptr;
  int64_t chunks_ = 0;
  Order order_ = Order::kInOrder;
  // Chunks taken: from the front in the low 32 bits, from the back in the
  // high 32. Chunk f (front) or chunks_ - 1 - b (back) is claimed by the
  // atomic update that saw f + b < chunks_, so the two ends never overlap.
  std::atomic<uint64_t> taken_{0};

  // The latest prefetch request, numbered; the spans are read under the mutex.
  std::mutex prefetch_mutex_;
  std::atomic<uint64_t> prefetch_request_{0};
  Span prefetch_spans_[kMaxSpans] = {};
  int prefetch_count_ = 0;
};

}  // namespace glassformer
