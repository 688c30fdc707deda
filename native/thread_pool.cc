#include "thread_pool.h"

#include <algorithm>
#include <chrono>

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define GLASSFORMER_PAUSE() _mm_pause()
#else
#define GLASSFORMER_PAUSE() std::this_thread::yield()
#endif

namespace glassformer {

namespace {
// How long an idle worker keeps polling for the next job before sleeping:
// longer than the gaps between the matmuls of a forward pass.
constexpr auto kSpin = std::chrono::microseconds(1000);

// Linux's wake-up preemption lets a freshly woken thread take the CPU of the
// thread that woke it; for a worker that means the caller stalls inside
// notify (measured: ~1 ms in a VM) while the worker does the whole job.
// SCHED_BATCH workers never preempt on wake-up: the caller keeps running and
// the worker joins in on the other core. Needs no privileges.
void never_preempt_on_wake() {
#if defined(__linux__)
  sched_param param{};
  param.sched_priority = 0;
  pthread_setschedparam(pthread_self(), SCHED_BATCH, &param);
#endif
}
}  // namespace

ThreadPool::~ThreadPool() { stop_workers(); }

void ThreadPool::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(wake_mutex_);
    stopping_.store(true);
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& w : workers_) w->thread.join();
  workers_.clear();
  stopping_.store(false);
}

void ThreadPool::set_threads(int threads) {
  std::lock_guard<std::mutex> job(busy_);
  if (threads < 1) threads = 1;
  threads_ = threads;
  if (static_cast<int>(workers_.size()) + 1 >= threads) return;  // idle extra workers just sleep
  // Start from the current generation, so a job published before a new
  // thread is first scheduled still counts as new to it.
  const uint64_t start = generation_.load();
  while (static_cast<int>(workers_.size()) + 1 < threads) {
    const bool prefetcher = workers_.empty();
    workers_.push_back(std::make_unique<Worker>());
    Worker* w = workers_.back().get();
    w->thread = std::thread([this, w, start, prefetcher] { worker_loop(w, start, prefetcher); });
  }
}

void ThreadPool::work(bool from_back) {
  constexpr uint64_t kBack = uint64_t{1} << 32;
  for (;;) {
    int64_t chunk;
    if (from_back) {
      uint64_t seen = taken_.load(std::memory_order_relaxed);
      do {
        if (static_cast<int64_t>((seen & (kBack - 1)) + (seen >> 32)) >= chunks_) return;
      } while (!taken_.compare_exchange_weak(seen, seen + kBack, std::memory_order_relaxed));
      chunk = chunks_ - 1 - static_cast<int64_t>(seen >> 32);
    } else {
      const uint64_t seen = taken_.fetch_add(1, std::memory_order_relaxed);
      chunk = static_cast<int64_t>(seen & (kBack - 1));
      if (chunk + static_cast<int64_t>(seen >> 32) >= chunks_) return;
    }
    task_(context_, chunk);
  }
}

bool ThreadPool::helpers_polling() const {
  // Half the polling time: a margin for a helper that ended its job late.
  const int64_t now = std::chrono::steady_clock::now().time_since_epoch().count();
  return threads_ > 1 && now - last_job_end_.load(std::memory_order_relaxed) <
                             std::chrono::duration_cast<std::chrono::steady_clock::duration>(kSpin / 2).count();
}

void ThreadPool::prefetch_when_idle(const Span* spans, int count) {
  std::lock_guard<std::mutex> lock(prefetch_mutex_);
  prefetch_count_ = std::min(count, kMaxSpans);
  for (int i = 0; i < prefetch_count_; ++i) prefetch_spans_[i] = spans[i];
  prefetch_request_.fetch_add(1, std::memory_order_release);
}

void ThreadPool::prefetch_spans(uint64_t generation, PrefetchProgress* progress) {
  // A piece is 64 lines: about 0.2 us of memory traffic, the longest a job
  // posted meanwhile waits for this helper.
  constexpr int64_t kPiece = 4096;
  constexpr int64_t kLine = 64;
  PrefetchProgress& p = *progress;
  if (prefetch_request_.load(std::memory_order_acquire) != p.request) {
    std::lock_guard<std::mutex> lock(prefetch_mutex_);
    p.request = prefetch_request_.load(std::memory_order_relaxed);
    p.count = prefetch_count_;
    std::copy(prefetch_spans_, prefetch_spans_ + p.count, p.spans);
    p.span = 0;
    p.offset = 0;
  }
  for (; p.span < p.count; ++p.span, p.offset = 0) {
    const Span& span = p.spans[p.span];
    while (p.offset < span.bytes) {
      if (generation_.load(std::memory_order_relaxed) != generation ||
          prefetch_request_.load(std::memory_order_relaxed) != p.request) {
        return;
      }
      const int64_t end = std::min(span.bytes, p.offset + kPiece);
      // prefetcht0 (locality 3): measured on this Zen 4 VM over 1 MB of cold
      // memory, it issued at 26 GB/s and left the most of it in L2 (a read
      // after took 16 us, against 21-23 us after prefetcht1/t2 or nta, 11-13
      // us fully cached, 57 us cold).
      for (int64_t at = p.offset; at < end; at += kLine) __builtin_prefetch(span.begin + at, 0, 3);
      p.offset = end;
    }
  }
}

void ThreadPool::run(int64_t chunks, Task task, const void* context, int max_threads, Order order) {
  std::unique_lock<std::mutex> job(busy_, std::try_to_lock);
  const int helpers = static_cast<int>(std::min<int64_t>(std::min(threads_, max_threads), chunks)) - 1;
  if (!job.owns_lock() || helpers <= 0) {
    for (int64_t c = 0; c < chunks; ++c) task(context, c);
    return;
  }
  uint64_t generation;
  {
    std::lock_guard<std::mutex> lock(wake_mutex_);
    task_ = task;
    context_ = context;
    chunks_ = chunks;
    order_ = order;
    taken_.store(0, std::memory_order_relaxed);
    generation = generation_.load() + 1;
    for (int i = 0; i < helpers; ++i) workers_[i]->slot.store(slot_value(generation, kPosted));
    generation_.store(generation, std::memory_order_release);
  }
  wake_.notify_all();
  work(false);
  // Every chunk has been taken. Withdraw the offer from helpers that have not
  // started; wait for the ones that have.
  for (int i = 0; i < helpers; ++i) {
    std::atomic<uint64_t>& slot = workers_[i]->slot;
    uint64_t expected = slot_value(generation, kPosted);
    if (slot.compare_exchange_strong(expected, slot_value(generation, kCancelled))) continue;
    for (int spins = 0; slot.load(std::memory_order_acquire) != slot_value(generation, kDone); ++spins) {
      if (spins < 4096) {
        GLASSFORMER_PAUSE();
      } else {
        std::this_thread::yield();
      }
    }
  }
  last_job_end_.store(std::chrono::steady_clock::now().time_since_epoch().count(), std::memory_order_relaxed);
}

void ThreadPool::worker_loop(Worker* self, uint64_t seen, bool prefetcher) {
  never_preempt_on_wake();
  PrefetchProgress progress;
  progress.request = prefetch_request_.load();
  for (;;) {
    // Poll for a while (prefetching what is asked meanwhile), then sleep
    // until the generation changes.
    const auto spin_until = std::chrono::steady_clock::now() + kSpin;
    while (generation_.load(std::memory_order_acquire) == seen && std::chrono::steady_clock::now() < spin_until) {
      if (prefetcher && (progress.span < progress.count ||
                         prefetch_request_.load(std::memory_order_acquire) != progress.request)) {
        prefetch_spans(seen, &progress);
      }
      for (int i = 0; i < 32; ++i) GLASSFORMER_PAUSE();
    }
    if (generation_.load(std::memory_order_acquire) == seen) {
      std::unique_lock<std::mutex> lock(wake_mutex_);
      wake_.wait(lock, [&] { return generation_.load() != seen; });
    }
    if (stopping_.load()) return;
    seen = generation_.load(std::memory_order_acquire);
    uint64_t expected = slot_value(seen, kPosted);
    if (self->slot.compare_exchange_strong(expected, slot_value(seen, kRunning), std::memory_order_acq_rel)) {
      work(order_ == Order::kHelpersFromBack);
      self->slot.store(slot_value(seen, kDone), std::memory_order_release);
    }
  }
}

}  // namespace glassformer
