# cython: freethreading_compatible = False
"""Batched socket I/O for the fast path: recvmmsg into the C feed, sendmmsg from the
outbox. The compiled twin of fastvrrp.net.io (same Python API).

One `receive` call drains up to `rounds` x `batch` packets from one receive socket;
each packet is validated and, in the steady state, handled entirely in C
(FastPath.c_feed_*). Only escalations become Python objects. `send_outbox` sends
every queued steady advert with one sendmmsg per send socket.

Destinations are packed sockaddr_in / sockaddr_in6 bytes (net.io.pack_sockaddr), so
no address is parsed per packet.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.object cimport PyObject
from libc.errno cimport EAGAIN, EINTR, errno
from libc.stdint cimport INT64_MAX, int64_t, uint8_t, uint64_t
from libc.stdlib cimport calloc, free, malloc

from fastvrrp._fastpath cimport FP_ESCALATE, FastPath, fp_feed_t
from fastvrrp._wheel cimport TimerWheel

cdef extern from *:
    """
    #include <errno.h>
    #include <stdint.h>
    #include <string.h>
    #include <time.h>
    #include <unistd.h>
    #include <sys/socket.h>
    #include <sys/resource.h>
    #include <sys/timerfd.h>
    #include <sys/uio.h>
    #include <netinet/in.h>

    /* One receive batch: `n` message headers sharing one allocation. */
    typedef struct {
        unsigned int n;
        size_t bufsize;
        struct mmsghdr *msgs;
        struct iovec *iov;
        struct sockaddr_in6 *names;
        unsigned char *bufs;
        unsigned char *ctrl;
        size_t ctrl_len;
    } fv_batch;

    static int fv_batch_init(fv_batch *b, unsigned int n, size_t bufsize) {
        b->n = n;
        b->bufsize = bufsize;
        b->ctrl_len = CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(int))
                      + CMSG_SPACE(sizeof(struct timespec));
        b->msgs = calloc(n, sizeof(struct mmsghdr));
        b->iov = calloc(n, sizeof(struct iovec));
        b->names = calloc(n, sizeof(struct sockaddr_in6));
        b->bufs = calloc(n, bufsize);
        b->ctrl = calloc(n, b->ctrl_len);
        return b->msgs && b->iov && b->names && b->bufs && b->ctrl ? 0 : -1;
    }

    static void fv_batch_free(fv_batch *b) {
        free(b->msgs); free(b->iov); free(b->names); free(b->bufs); free(b->ctrl);
        b->msgs = NULL; b->iov = NULL; b->names = NULL; b->bufs = NULL; b->ctrl = NULL;
    }

    /* recvmmsg up to b->n messages without blocking; <0 with errno on error. */
    static int fv_recv(int fd, fv_batch *b) {
        for (unsigned int i = 0; i < b->n; i++) {
            b->iov[i].iov_base = b->bufs + i * b->bufsize;
            b->iov[i].iov_len = b->bufsize;
            struct msghdr *h = &b->msgs[i].msg_hdr;
            h->msg_name = &b->names[i];
            h->msg_namelen = sizeof(struct sockaddr_in6);
            h->msg_iov = &b->iov[i];
            h->msg_iovlen = 1;
            h->msg_control = b->ctrl + i * b->ctrl_len;
            h->msg_controllen = b->ctrl_len;
            h->msg_flags = 0;
        }
        return recvmmsg(fd, b->msgs, b->n, MSG_DONTWAIT, NULL);
    }

    static const unsigned char *fv_data(fv_batch *b, unsigned int i, size_t *len) {
        *len = b->msgs[i].msg_len;
        return b->bufs + i * b->bufsize;
    }

    /* IPv6: source from msg_name, destination and hop limit from ancillary data. */
    static void fv_ipv6_meta(fv_batch *b, unsigned int i, const unsigned char **src,
                             unsigned char *dst, int *hop) {
        struct msghdr *h = &b->msgs[i].msg_hdr;
        *src = b->names[i].sin6_addr.s6_addr;
        *hop = -1;
        memset(dst, 0, 16);
        for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
            if (c->cmsg_level != IPPROTO_IPV6)
                continue;
            if (c->cmsg_type == IPV6_PKTINFO)
                memcpy(dst, &((struct in6_pktinfo *)CMSG_DATA(c))->ipi6_addr, 16);
            else if (c->cmsg_type == IPV6_HOPLIMIT)
                memcpy(hop, CMSG_DATA(c), sizeof(int));
        }
    }

    /* Both clocks read together, to map receive timestamps onto CLOCK_MONOTONIC. */
    static int64_t fv_monotonic(void) {
        struct timespec m;
        clock_gettime(CLOCK_MONOTONIC, &m);
        return (int64_t)m.tv_sec * 1000000000 + m.tv_nsec;
    }

    /* A real-time thread's breath (fastvrrp.net.scheduling.breathe()): sleep until the
       thread has really left the CPU once (its voluntary context switches moved),
       which resets RLIMIT_RTTIME's count: 20 us, doubled up to 4 times. */
    static long fv_voluntary_switches(void) {
        struct rusage ru;
        getrusage(RUSAGE_THREAD, &ru);
        return ru.ru_nvcsw;
    }
    static void fv_breathe(void) {
        long before = fv_voluntary_switches();
        struct timespec t = {0, 20000};
        int i;
        for (i = 0; i < 4; i++) {
            nanosleep(&t, NULL);
            if (fv_voluntary_switches() != before)
                return;
            t.tv_nsec *= 2;
        }
    }

    /* Arm an absolute CLOCK_MONOTONIC timerfd; deadline 0 disarms. */
    static int fv_timerfd_arm(int fd, int64_t deadline) {
        struct itimerspec spec;
        memset(&spec, 0, sizeof spec);
        spec.it_value.tv_sec = deadline / 1000000000;
        spec.it_value.tv_nsec = deadline % 1000000000;
        return timerfd_settime(fd, TFD_TIMER_ABSTIME, &spec, NULL);
    }

    static void fv_clocks(int64_t *mono, int64_t *real) {
        struct timespec m, r;
        clock_gettime(CLOCK_MONOTONIC, &m);
        clock_gettime(CLOCK_REALTIME, &r);
        *mono = (int64_t)m.tv_sec * 1000000000 + m.tv_nsec;
        *real = (int64_t)r.tv_sec * 1000000000 + r.tv_nsec;
    }

    /* Message i's arrival on CLOCK_MONOTONIC from its SCM_TIMESTAMPNS (realtime):
       now minus its age; `fallback` without a stamp or with an implausible age (a
       clock step). Same rule as fastvrrp.net.sockets.arrival_ns. */
    static int64_t fv_arrival(fv_batch *b, unsigned int i, int64_t mono, int64_t real,
                              int64_t max_age, int64_t fallback) {
        struct msghdr *h = &b->msgs[i].msg_hdr;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS
                    && c->cmsg_len >= CMSG_LEN(sizeof(struct timespec))) {
                struct timespec ts;
                memcpy(&ts, CMSG_DATA(c), sizeof ts);
                int64_t age = real - ((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
                return age >= 0 && age <= max_age ? mono - age : fallback;
            }
        }
        return fallback;
    }

    /* Fill message i of a send batch: one buffer to one packed sockaddr. */
    static void fv_send_set(fv_batch *b, unsigned int i, const unsigned char *data, size_t len,
                            const void *name, size_t namelen) {
        b->iov[i].iov_base = (void *)data;
        b->iov[i].iov_len = len;
        struct msghdr *h = &b->msgs[i].msg_hdr;
        h->msg_name = (void *)name;
        h->msg_namelen = (socklen_t)namelen;
        h->msg_iov = &b->iov[i];
        h->msg_iovlen = 1;
        h->msg_control = NULL;
        h->msg_controllen = 0;
        h->msg_flags = 0;
    }

    static int fv_send(int fd, fv_batch *b, unsigned int first, unsigned int count) {
        return sendmmsg(fd, b->msgs + first, count, MSG_DONTWAIT);
    }
    """
    ctypedef struct fv_batch:
        unsigned int n
    int fv_batch_init(fv_batch* b, unsigned int n, size_t bufsize) nogil
    void fv_batch_free(fv_batch* b) nogil
    int fv_recv(int fd, fv_batch* b) nogil
    const uint8_t* fv_data(fv_batch* b, unsigned int i, size_t* length) nogil
    void fv_ipv6_meta(fv_batch* b, unsigned int i, const uint8_t** src, uint8_t* dst,
                      int* hop) nogil
    int64_t fv_monotonic() nogil
    void fv_breathe() nogil
    long fv_voluntary_switches() nogil
    int fv_timerfd_arm(int fd, int64_t deadline) nogil
    int timerfd_create(int clockid, int flags) nogil
    int CLOCK_MONOTONIC
    int TFD_NONBLOCK
    int TFD_CLOEXEC
    ssize_t read(int fd, void* buf, size_t count) nogil
    int close(int fd) nogil
    void fv_clocks(int64_t* mono, int64_t* real) nogil
    int64_t fv_arrival(fv_batch* b, unsigned int i, int64_t mono, int64_t real,
                       int64_t max_age, int64_t fallback) nogil
    void fv_send_set(fv_batch* b, unsigned int i, const uint8_t* data, size_t length,
                     const void* name, size_t namelen) nogil
    int fv_send(int fd, fv_batch* b, unsigned int first, unsigned int count) nogil

IMPLEMENTATION = "compiled"

from fastvrrp.net.sockets import ARRIVAL_MAX_AGE_NS

cdef int64_t _MAX_AGE = ARRIVAL_MAX_AGE_NS


cdef class TimerFd:
    """One absolute-deadline timer on CLOCK_MONOTONIC: the compiled twin of
    fastvrrp.net.timerfd.TimerFd (same API), so that the steady state re-arms it
    without a ctypes call."""
    cdef int _fd
    cdef int64_t _armed      # the deadline it is armed for; -1: not armed

    def __cinit__(self):
        self._fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
        if self._fd < 0:
            raise OSError(errno, "timerfd_create failed")
        self._armed = -1

    def __dealloc__(self):
        if self._fd >= 0:
            close(self._fd)

    def fileno(self):
        return self._fd

    @property
    def armed_for(self):
        return None if self._armed < 0 else self._armed

    def arm(self, deadline_ns):
        """Fire at `deadline_ns` (monotonic), or never when None. A deadline in the
        past fires at once."""
        self.c_arm(-1 if deadline_ns is None else max(<int64_t>deadline_ns, 1))

    cdef int c_arm(self, int64_t deadline) except -1:
        if deadline == self._armed:
            return 0
        if fv_timerfd_arm(self._fd, deadline if deadline > 0 else 0) < 0:
            raise OSError(errno, "timerfd_settime failed")
        self._armed = deadline
        return 0

    cdef int c_arm_earlier(self, int64_t deadline) except -1:
        """Arm for `deadline` (INT64_MAX: none) if not armed or armed later."""
        if deadline != INT64_MAX and (self._armed < 0 or deadline < self._armed):
            self.c_arm(max(deadline, 1))
        return 0

    def consume(self):
        """Read the expiry count (0 when it had not fired); call from the reader."""
        cdef uint64_t count = 0
        if read(self._fd, &count, 8) != 8:
            return 0
        self._armed = -1
        return count

    def close(self):
        if self._fd >= 0:
            close(self._fd)
            self._fd = -1


cdef class BatchIO:
    """Reusable recvmmsg/sendmmsg batches for one daemon."""
    cdef fv_batch _rx
    cdef fv_batch _tx
    cdef readonly Py_ssize_t received, sent, send_errors, recv_calls, send_calls
    cdef readonly int last_send_errno
    # Real time (vrrp_rt_priority): between sendmmsg calls, every this long, breathe
    # unless the thread has slept since the last look (net.scheduling.Breather), or a
    # mass takeover's sends (1000 adverts, ~6 ms in the namespace lab) count towards
    # RLIMIT_RTTIME with the Python after them. 0: never.
    cdef public int64_t breathe_every_ns
    cdef int64_t _last_breath
    cdef long _switches
    # The event loop's wake-ups (attach/watch)
    cdef object _loop
    cdef FastPath _fp
    cdef TimerWheel _wheel
    cdef TimerFd _tfd
    cdef object _tx_socks, _on_timers
    cdef readonly int64_t _hold_ns
    cdef list _watched          # per watched socket: (gid, sock, family, on_escalation, on_receive, fd)
    cdef list _held             # per watched socket: next drain (monotonic ns), 0 if the loop watches it

    def __cinit__(self, unsigned int batch=64, size_t bufsize=2048):
        self._switches = fv_voluntary_switches()
        if fv_batch_init(&self._rx, batch, bufsize) < 0 or fv_batch_init(&self._tx, batch, 0) < 0:
            fv_batch_free(&self._rx)
            fv_batch_free(&self._tx)
            raise MemoryError()

    def __dealloc__(self):
        fv_batch_free(&self._rx)
        fv_batch_free(&self._tx)

    def receive(self, FastPath fp not None, int gid, sock, int family, int64_t now,
                on_escalation, int rounds=4):
        cdef Py_ssize_t escalated = 0
        return self._receive(fp, gid, sock, family, now, on_escalation, rounds, &escalated)

    # ---- the event loop's wake-ups ------------------------------------------------
    #
    # The loop calls receive_wake / timer_wake directly: the steady state (drain a
    # socket through the fast path, send what fell due, re-arm the timerfd) runs here,
    # and Python is called back only when a state machine, a drop sample or an error
    # needs it. A socket that delivered is not watched again at once but drained
    # every hold_ns while it keeps delivering: adverts are stamped by the kernel, so
    # reading them a little later never moves a timer, and a busy backup wakes
    # about 1/hold_ns times a second instead of once per packet or two. Every
    # timerfd wake-up drains the held sockets before it expires timers, so an
    # advert that came before a deadline is seen before the deadline acts.

    def attach(self, loop, FastPath fp not None, TimerWheel wheel not None,
               TimerFd timerfd not None, tx_socks, on_timers, int64_t hold_ns=0):
        """Start serving `loop`: the timerfd's reader is timer_wake. `on_timers(now,
        [(idx, kind), ...])` gets the timers a state machine must see (and is called
        with an empty list when a drained advert needs Python)."""
        if hold_ns < 0:
            raise ValueError("hold_ns must be >= 0")
        self._loop, self._fp, self._wheel, self._tfd = loop, fp, wheel, timerfd
        self._tx_socks, self._on_timers, self._hold_ns = tx_socks, on_timers, hold_ns
        self._watched = []
        self._held = []
        loop.add_reader(timerfd.fileno(), self.timer_wake)

    def watch(self, int gid, sock, int family, on_escalation, on_receive):
        """Serve receive socket `sock` (fast-path group gid): escalations go to
        `on_escalation(escalation, arrival)`; `on_receive(None)` is called after any
        escalation or counted drop, `on_receive(error)` on a receive error."""
        if self._loop is None:
            raise RuntimeError("attach first")
        i = len(self._watched)
        self._watched.append((gid, sock, family, on_escalation, on_receive, sock.fileno()))
        self._held.append(0)
        self._loop.add_reader(sock.fileno(), self.receive_wake, i)

    def detach(self):
        """Stop serving the loop (shutdown, reload): every reader goes."""
        if self._loop is None:
            return
        for i, rx in enumerate(self._watched):
            if not self._held[i]:
                self._loop.remove_reader(rx[5])
        self._loop.remove_reader(self._tfd.fileno())
        self._loop = None
        self._watched = []
        self._held = []

    def rearm(self):
        """Arm the timerfd for the earliest of the wheel's next deadline and the next
        drain of a held socket, if that is earlier than what it is armed for (a
        steady backup only ever pushes its deadlines later)."""
        self._tfd.c_arm_earlier(self._next_wake())

    cdef int64_t _next_wake(self) except? -2:
        cdef int64_t t = self._wheel.c_next_deadline(), h
        for h in self._held:
            if 0 < h < t:
                t = h
        return t

    def receive_wake(self, Py_ssize_t i):
        """Socket i is readable."""
        cdef Py_ssize_t escalated = 0, got = 0
        cdef int64_t now = fv_monotonic()
        gid, sock, family, on_escalation, on_receive, fd = self._watched[i]
        try:
            got = self._receive(self._fp, gid, sock, family, now, on_escalation, 4, &escalated)
        except OSError as exc:
            on_receive(exc)
            return
        if got and self._hold_ns:
            self._loop.remove_reader(fd)
            self._held[i] = now + self._hold_ns
        if escalated or self._fp.c_has_drop_samples():
            on_receive(None)  # Python re-arms through rearm()
            return
        self.rearm()

    def timer_wake(self):
        """The timerfd fired: drain the held sockets, then expire timers (steady
        adverts are sent at once, one sendmmsg per socket)."""
        cdef int64_t now
        cdef Py_ssize_t k, i, count, tid, escalated = 0, got
        cdef const Py_ssize_t* tids
        cdef list timers
        cdef bint python = False
        self._tfd.consume()
        now = fv_monotonic()
        for i in range(len(self._held)):
            if not self._held[i]:
                continue
            gid, sock, family, on_escalation, on_receive, fd = self._watched[i]
            escalated = 0
            try:
                got = self._receive(self._fp, gid, sock, family, now, on_escalation, 4, &escalated)
            except OSError as exc:
                got = 0
                on_receive(exc)
            if got:
                self._held[i] = now + self._hold_ns
            else:
                self._held[i] = 0  # quiet: back to waking on its next packet
                self._loop.add_reader(fd, self.receive_wake, i)
            python = python or escalated > 0
        k = self._fp.c_expire(now)
        self.send_outbox(self._fp, self._tx_socks)
        if k or python or self._fp.c_has_drop_samples():
            timers = []
            tids = self._fp.c_escalated_timers(&count)
            for i in range(count):
                tid = tids[i]
                timers.append((tid // self._fp.kinds, tid % self._fp.kinds))
            self._on_timers(now, timers)  # Python re-arms through rearm()
            return
        self.rearm()

    cdef Py_ssize_t _receive(self, FastPath fp, int gid, sock, int family, int64_t now,
                             on_escalation, int rounds, Py_ssize_t* escalated) except -1:
        """Drain the socket (at most rounds x batch packets) through the fast path.

        Each escalation, (idx or -1, reason, Advert), is handed to
        `on_escalation(escalation, arrival)` at once, before the next packet is fed,
        so the fast path always sees the entry the state machine left (arrival order
        is kept). The fast path is fed each packet's
        arrival time (its SCM_TIMESTAMPNS on CLOCK_MONOTONIC) where the socket has
        SO_TIMESTAMPNS on, else `now`. Returns the packets received.
        """
        cdef int fd = sock.fileno()
        cdef int got, i
        cdef size_t length
        cdef const uint8_t* data
        cdef const uint8_t* src
        cdef uint8_t dst[16]
        cdef int hop, r
        cdef int64_t mono, real, at
        cdef fp_feed_t res
        cdef Py_ssize_t total = 0
        for _ in range(rounds):
            with nogil:
                got = fv_recv(fd, &self._rx)
            self.recv_calls += 1
            if got < 0:
                if errno == EAGAIN or errno == EINTR:  # EWOULDBLOCK == EAGAIN on Linux
                    break
                raise OSError(errno, "recvmmsg failed")
            self.received += got
            total += got
            fv_clocks(&mono, &real)
            for i in range(got):
                data = fv_data(&self._rx, i, &length)
                at = fv_arrival(&self._rx, i, mono, real, _MAX_AGE, now)
                if family == 4:
                    r = fp.c_feed_ipv4(gid, data, length, at, &res)
                    if r == FP_ESCALATE:
                        escalated[0] += 1
                        on_escalation(fp.c_escalation_ipv4(data, length, &res), at)
                else:
                    fv_ipv6_meta(&self._rx, i, &src, dst, &hop)
                    r = fp.c_feed_ipv6(gid, data, length, src, dst, hop, at, &res)
                    if r == FP_ESCALATE:
                        escalated[0] += 1
                        on_escalation(fp.c_escalation_ipv6(data, length, src, dst, hop, &res), at)
            if <unsigned int>got < self._rx.n:
                break
        return total

    def send_outbox(self, FastPath fp not None, socks):
        """Send every queued advert, one sendmmsg per send socket and batch (the
        outbox is taken socket by socket, each in queue order), then clear the
        outbox. `socks` maps send gid to socket. Returns how many were sent."""
        cdef Py_ssize_t count = fp.c_outbox_count()
        cdef Py_ssize_t i, k, start, end, nsorted = 0
        cdef size_t length
        cdef int gid, idx, run_gid, fd, got
        cdef PyObject* dest
        cdef const uint8_t* data
        cdef Py_ssize_t total = 0
        cdef long switches
        cdef Py_ssize_t* order
        cdef uint8_t* taken
        if count == 0:
            return 0
        order = <Py_ssize_t*>malloc(count * sizeof(Py_ssize_t))
        taken = <uint8_t*>calloc(count, 1)
        try:
            if order == NULL or taken == NULL:
                raise MemoryError()
            # Stable grouping by socket: instances of several interfaces interleave in
            # the outbox, and one socket's run is what one sendmmsg can carry.
            for k in range(count):
                if taken[k]:
                    continue
                fp.c_outbox_packet(k, &length, &run_gid, &idx, &dest)
                for i in range(k, count):
                    if not taken[i]:
                        fp.c_outbox_packet(i, &length, &gid, &idx, &dest)
                        if gid == run_gid:
                            taken[i] = 1
                            order[nsorted] = i
                            nsorted += 1
            start = 0
            while start < count:
                # A run of packets for the same socket, at most a batch.
                end = start
                run_gid = -1
                while end < count and end - start < self._tx.n:
                    data = fp.c_outbox_packet(order[end], &length, &gid, &idx, &dest)
                    if run_gid == -1:
                        run_gid = gid
                    elif gid != run_gid:
                        break
                    fv_send_set(&self._tx, <unsigned int>(end - start), data, length,
                                PyBytes_AS_STRING(<object>dest),
                                <size_t>PyBytes_GET_SIZE(<object>dest))
                    end += 1
                fd = socks[run_gid].fileno()
                while start < end:
                    with nogil:
                        got = fv_send(fd, &self._tx, 0, <unsigned int>(end - start))
                    self.send_calls += 1
                    if self.breathe_every_ns and fv_monotonic() - self._last_breath >= self.breathe_every_ns:
                        switches = fv_voluntary_switches()
                        if switches == self._switches:
                            with nogil:
                                fv_breathe()
                            switches = fv_voluntary_switches()
                        self._switches = switches
                        self._last_breath = fv_monotonic()
                    if got <= 0:
                        # The whole rest of this run is lost (e.g. ENOBUFS): counted,
                        # never raised, the next interval sends again.
                        self.send_errors += end - start
                        self.last_send_errno = errno
                        start = end
                        break
                    total += got
                    self.sent += got
                    if start + got < end:
                        # Partial send: shift the rest to the front of the batch.
                        for i in range(start + got, end):
                            data = fp.c_outbox_packet(order[i], &length, &gid, &idx, &dest)
                            fv_send_set(&self._tx, <unsigned int>(i - start - got), data, length,
                                        PyBytes_AS_STRING(<object>dest),
                                        <size_t>PyBytes_GET_SIZE(<object>dest))
                    start += got
        finally:
            free(order)
            free(taken)
            fp.c_outbox_clear()
        return total
