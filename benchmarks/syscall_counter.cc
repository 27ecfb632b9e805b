// Counts, inside a process, the calls of the C library's system call wrappers that a
// client makes per request (recv, send, epoll_wait, poll, timerfd_settime, ...), without
// slowing it down as strace does. Loaded with LD_PRELOAD; writes "name count" lines to
// the file named by DQLITE_SYSCALL_COUNT_FILE when the process exits. Used by
// syscalls.sh; a call made inside the C library itself is not seen.
#include <dlfcn.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>

namespace {

enum counter { c_recv, c_recv_failed, c_send, c_recvmsg, c_sendmsg, c_epoll_wait, c_epoll_ctl,
               c_poll, c_timerfd_settime, c_read, c_write, c_count };
const char* const names[c_count] = {"recv", "recv(failed)", "send", "recvmsg", "sendmsg",
                                    "epoll_wait", "epoll_ctl", "poll", "timerfd_settime",
                                    "read", "write"};
std::atomic<long> counts[c_count];

template <class F>
F* next(const char* name) {
  return reinterpret_cast<F*>(dlsym(RTLD_NEXT, name));
}

struct report {
  ~report() {
    const char* path = std::getenv("DQLITE_SYSCALL_COUNT_FILE");
    if (!path) return;
    if (std::FILE* f = std::fopen(path, "w")) {
      for (int i = 0; i < c_count; ++i) std::fprintf(f, "%s %ld\n", names[i], counts[i].load());
      std::fclose(f);
    }
  }
} at_exit;

}  // namespace

extern "C" {

ssize_t recv(int fd, void* buf, size_t n, int flags) {
  static auto* real = next<ssize_t(int, void*, size_t, int)>("recv");
  ssize_t r = real(fd, buf, n, flags);
  ++counts[c_recv];
  if (r < 0) ++counts[c_recv_failed];
  return r;
}
ssize_t send(int fd, const void* buf, size_t n, int flags) {
  static auto* real = next<ssize_t(int, const void*, size_t, int)>("send");
  ++counts[c_send];
  return real(fd, buf, n, flags);
}
ssize_t recvmsg(int fd, msghdr* m, int flags) {
  static auto* real = next<ssize_t(int, msghdr*, int)>("recvmsg");
  ssize_t r = real(fd, m, flags);
  ++counts[c_recvmsg];
  if (r < 0) ++counts[c_recv_failed];
  return r;
}
ssize_t sendmsg(int fd, const msghdr* m, int flags) {
  static auto* real = next<ssize_t(int, const msghdr*, int)>("sendmsg");
  ++counts[c_sendmsg];
  return real(fd, m, flags);
}
int epoll_wait(int ep, epoll_event* ev, int max, int timeout) {
  static auto* real = next<int(int, epoll_event*, int, int)>("epoll_wait");
  ++counts[c_epoll_wait];
  return real(ep, ev, max, timeout);
}
int epoll_ctl(int ep, int op, int fd, epoll_event* ev) {
  static auto* real = next<int(int, int, int, epoll_event*)>("epoll_ctl");
  ++counts[c_epoll_ctl];
  return real(ep, op, fd, ev);
}
int poll(pollfd* fds, nfds_t n, int timeout) {
  static auto* real = next<int(pollfd*, nfds_t, int)>("poll");
  ++counts[c_poll];
  return real(fds, n, timeout);
}
int timerfd_settime(int fd, int flags, const itimerspec* v, itimerspec* old) {
  static auto* real = next<int(int, int, const itimerspec*, itimerspec*)>("timerfd_settime");
  ++counts[c_timerfd_settime];
  return real(fd, flags, v, old);
}
ssize_t read(int fd, void* buf, size_t n) {
  static auto* real = next<ssize_t(int, void*, size_t)>("read");
  ++counts[c_read];
  return real(fd, buf, n);
}
ssize_t write(int fd, const void* buf, size_t n) {
  static auto* real = next<ssize_t(int, const void*, size_t)>("write");
  ++counts[c_write];
  return real(fd, buf, n);
}

}  // extern "C"
