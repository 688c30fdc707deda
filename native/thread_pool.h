// A small persistent thread pool for splitting one matrix multiply across cores.
//
// The caller is worker 0 and runs its share itself; the other workers spin
// briefly after each job (a model's forward pass issues matmuls back to back,
// and waking a sleeping thread costs tens of microseconds) and then sleep on a
// condition variable so an idle process uses no CPU.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace glassformer {

class ThreadPool {
 public:
  ThreadPool() = default;
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  ~ThreadPool();

  // Total threads including the caller; at least 1.
  int size() const { return static_cast<int>(workers_.size()) + 1; }
  void resize(int threads);

  // Runs task(t) for t in [0, count) and returns when all have finished; the
  // caller runs t = 0. count must not exceed size(). If another thread is
  // already using the pool (e.g. two Node worker threads), runs serially.
  void run(int count, const std::function<void(int)>& task);

 private:
  void worker_loop(int index, uint64_t seen);
  void stop_workers();

  std::vector<std::thread> workers_;
  std::mutex busy_;  // one job at a time

  std::mutex wake_mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stopping_{false};
  const std::function<void(int)>* task_ = nullptr;
  int count_ = 0;
};

}  // namespace glassformer
