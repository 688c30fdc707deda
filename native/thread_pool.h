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

  // Runs every chunk once, on up to min(threads(), max_threads) threads, and
  // returns when all are done. If another thread is already using the pool
  // (two Node worker threads), runs them all on the caller.
  void run(int64_t chunks, Task task, const void* context, int max_threads = 1 << 30);

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

  void worker_loop(Worker* self, uint64_t seen);
  void work();  // takes chunks until none are left
  void stop_workers();

  std::vector<std::unique_ptr<Worker>> workers_;
  int threads_ = 1;
  std::mutex busy_;  // one job at a time

  std::mutex wake_mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stopping_{false};

  // The current job, written before its generation is published.
  Task task_ = nullptr;
  const void* context_ = nullptr;
  int64_t chunks_ = 0;
  std::atomic<int64_t> next_chunk_{0};
};

}  // namespace glassformer
