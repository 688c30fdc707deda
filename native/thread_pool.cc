#include "thread_pool.h"

#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define GLASSFORMER_PAUSE() _mm_pause()
#else
#define GLASSFORMER_PAUSE() std::this_thread::yield()
#endif

namespace glassformer {

namespace {
// How long an idle worker keeps polling for the next job before sleeping.
constexpr auto kSpin = std::chrono::microseconds(200);
}  // namespace

ThreadPool::~ThreadPool() { stop_workers(); }

void ThreadPool::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(wake_mutex_);
    stopping_.store(true);
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& w : workers_) w.join();
  workers_.clear();
  stopping_.store(false);
}

void ThreadPool::resize(int threads) {
  std::lock_guard<std::mutex> job(busy_);
  if (threads < 1) threads = 1;
  if (threads == size()) return;
  stop_workers();
  // Workers start from the current generation, so a job published before a
  // new thread gets scheduled is still seen as new.
  const uint64_t start = generation_.load();
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i, start] { worker_loop(i, start); });
}

void ThreadPool::run(int count, const std::function<void(int)>& task) {
  std::unique_lock<std::mutex> job(busy_, std::try_to_lock);
  if (!job.owns_lock() || count <= 1) {
    for (int t = 0; t < count; ++t) task(t);
    return;
  }
  if (count > size()) count = size();
  {
    std::lock_guard<std::mutex> lock(wake_mutex_);
    task_ = &task;
    count_ = count;
    pending_.store(count - 1);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  task(0);
  while (pending_.load(std::memory_order_acquire) != 0) GLASSFORMER_PAUSE();
}

void ThreadPool::worker_loop(int index, uint64_t seen) {
  for (;;) {
    // Poll for a while, then sleep until the generation changes.
    const auto spin_until = std::chrono::steady_clock::now() + kSpin;
    while (generation_.load(std::memory_order_acquire) == seen && std::chrono::steady_clock::now() < spin_until) {
      for (int i = 0; i < 64; ++i) GLASSFORMER_PAUSE();
    }
    if (generation_.load(std::memory_order_acquire) == seen) {
      std::unique_lock<std::mutex> lock(wake_mutex_);
      wake_.wait(lock, [&] { return generation_.load() != seen; });
    }
    const std::function<void(int)>* task;
    int count;
    {
      std::lock_guard<std::mutex> lock(wake_mutex_);
      seen = generation_.load();
      if (stopping_.load()) return;
      task = task_;
      count = count_;
    }
    if (index < count) {
      (*task)(index);
      pending_.fetch_sub(1, std::memory_order_release);
    }
  }
}

}  // namespace glassformer
