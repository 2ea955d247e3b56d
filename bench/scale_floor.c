/* The kernel floor for bench/scale.py: the least a VRRP master and backup can do.
 *
 *   scale_floor send ADVERT_INT_NS FILE   master side: FILE has one line per
 *                                          interface, "IFNAME IFINDEX HEX HEX ...",
 *                                          each HEX one whole IPv4 datagram (the
 *                                          advert with its IP header, as fastvrrp
 *                                          and keepalived send it, IP_HDRINCL)
 *   scale_floor recv IFNAME:IFINDEX ...    backup side: drain every advert
 *
 * send: one raw IPPROTO_VRRP socket per interface, set up as the daemons' send
 * sockets are (IP_HDRINCL, SO_BINDTODEVICE, IP_MULTICAST_IF, no loopback, a
 * drop-everything BPF filter and SO_RCVBUF 0 so nothing is ever queued on it). An
 * absolute timerfd (CLOCK_MONOTONIC) ticks every ADVERT_INT_NS; per tick, one
 * sendmmsg per interface carries all of that interface's adverts. Nothing else runs.
 *
 * recv: one raw IPPROTO_VRRP socket per interface, joined to 224.0.0.18 on it, bound
 * to the group and the device, IP_MULTICAST_ALL off (as the daemons' receive
 * sockets). epoll_wait blocks; a ready socket is drained with recvmmsg (64 per call,
 * MSG_DONTWAIT) until EAGAIN. The packets are counted, not inspected.
 *
 * SIGTERM/SIGINT: print counters ("sent N ticks T overruns O errors E" or
 * "received N calls C") on stdout and exit 0.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_MULTICAST_ALL
#define IP_MULTICAST_ALL 49
#endif
#define VRRP_PROTO 112
#define MAX_IFACES 64
#define MAX_PER_IFACE 1024 /* UIO_MAXIOV: sendmmsg's vlen limit */
#define RECV_BATCH 64
#define RECV_BUF 2048

static volatile sig_atomic_t stop;

static void on_signal(int sig) { (void)sig; stop = 1; }

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void install_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: blocking calls return EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

struct iface {
    int fd;
    unsigned int n;
    struct mmsghdr *msgs;
    struct iovec *iov;
};

static int open_send(const char *ifname, int ifindex) {
    int fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, VRRP_PROTO);
    int one = 1, zero = 0, tos = 0xc0;
    struct ip_mreqn mreqn;
    struct sock_filter drop = BPF_STMT(BPF_RET | BPF_K, 0);
    struct sock_fprog prog = {1, &drop};
    if (fd < 0) die("socket");
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &zero, sizeof zero) < 0) die("SO_RCVBUF");
    if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_ALL, &zero, sizeof zero) < 0) die("IP_MULTICAST_ALL");
    if (setsockopt(fd, IPPROTO_IP, IP_HDRINCL, &one, sizeof one) < 0) die("IP_HDRINCL");
    if (setsockopt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof tos) < 0) die("IP_TOS");
    if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname, strlen(ifname) + 1) < 0) die("SO_BINDTODEVICE");
    memset(&mreqn, 0, sizeof mreqn);
    mreqn.imr_ifindex = ifindex;
    if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &mreqn, sizeof mreqn) < 0) die("IP_MULTICAST_IF");
    if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &zero, sizeof zero) < 0) die("IP_MULTICAST_LOOP");
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) < 0) die("SO_ATTACH_FILTER");
    return fd;
}

static int do_send(long long interval_ns, const char *path) {
    static struct iface ifs[MAX_IFACES];
    static struct sockaddr_in group;
    unsigned int nif = 0;
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    unsigned long long sent = 0, ticks = 0, overruns = 0, errors = 0;
    struct itimerspec its;
    int tfd;

    if (!f) die(path);
    group.sin_family = AF_INET;
    inet_pton(AF_INET, "224.0.0.18", &group.sin_addr);
    while (getline(&line, &cap, f) > 0) {
        char ifname[IF_NAMESIZE + 1];
        int ifindex, off = 0;
        char *p;
        struct iface *it;
        if (sscanf(line, "%16s %d %n", ifname, &ifindex, &off) != 2) continue;
        if (nif == MAX_IFACES) { fprintf(stderr, "too many interfaces\n"); return 1; }
        it = &ifs[nif++];
        it->fd = open_send(ifname, ifindex);
        it->msgs = calloc(MAX_PER_IFACE, sizeof *it->msgs);
        it->iov = calloc(MAX_PER_IFACE, sizeof *it->iov);
        if (!it->msgs || !it->iov) die("calloc");
        p = line + off;
        while (*p && *p != '\n') {
            size_t len = strcspn(p, " \n");
            unsigned char *pkt;
            if (len == 0) { p++; continue; }
            if (len % 2 || it->n == MAX_PER_IFACE) { fprintf(stderr, "bad advert list\n"); return 1; }
            pkt = malloc(len / 2);
            if (!pkt) die("malloc");
            for (size_t i = 0; i < len / 2; i++) {
                int hi = hexval(p[2 * i]), lo = hexval(p[2 * i + 1]);
                if (hi < 0 || lo < 0) { fprintf(stderr, "bad hex\n"); return 1; }
                pkt[i] = (unsigned char)(hi << 4 | lo);
            }
            it->iov[it->n].iov_base = pkt;
            it->iov[it->n].iov_len = len / 2;
            it->msgs[it->n].msg_hdr.msg_iov = &it->iov[it->n];
            it->msgs[it->n].msg_hdr.msg_iovlen = 1;
            it->msgs[it->n].msg_hdr.msg_name = &group;
            it->msgs[it->n].msg_hdr.msg_namelen = sizeof group;
            it->n++;
            p += len;
        }
    }
    free(line);
    fclose(f);

    install_signals();
    tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    if (tfd < 0) die("timerfd_create");
    clock_gettime(CLOCK_MONOTONIC, &its.it_value);
    its.it_interval.tv_sec = interval_ns / 1000000000LL;
    its.it_interval.tv_nsec = interval_ns % 1000000000LL;
    if (timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0) die("timerfd_settime");
    printf("ready %u interfaces\n", nif);
    fflush(stdout);

    while (!stop) {
        uint64_t expirations;
        if (read(tfd, &expirations, sizeof expirations) != sizeof expirations) {
            if (errno == EINTR) continue;
            die("read timerfd");
        }
        ticks++;
        overruns += expirations - 1;
        for (unsigned int i = 0; i < nif; i++) {
            unsigned int done = 0;
            while (done < ifs[i].n) {
                int r = sendmmsg(ifs[i].fd, ifs[i].msgs + done, ifs[i].n - done, 0);
                if (r < 0) {
                    if (errno == EINTR && !stop) continue;
                    errors++;
                    break;
                }
                done += (unsigned int)r;
            }
            sent += done;
        }
    }
    printf("sent %llu ticks %llu overruns %llu errors %llu\n", sent, ticks, overruns, errors);
    return 0;
}

static int do_recv(int argc, char **argv) {
    static struct mmsghdr msgs[RECV_BATCH];
    static struct iovec iov[RECV_BATCH];
    static unsigned char bufs[RECV_BATCH][RECV_BUF];
    unsigned long long received = 0, calls = 0;
    int ep = epoll_create1(EPOLL_CLOEXEC);

    if (ep < 0) die("epoll_create1");
    for (int i = 0; i < argc; i++) {
        char ifname[IF_NAMESIZE + 1];
        int ifindex, zero = 0;
        struct ip_mreqn mreqn;
        struct sockaddr_in group;
        struct epoll_event ev;
        int fd;
        if (sscanf(argv[i], "%16[^:]:%d", ifname, &ifindex) != 2) {
            fprintf(stderr, "want IFNAME:IFINDEX, not %s\n", argv[i]);
            return 2;
        }
        fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, VRRP_PROTO);
        if (fd < 0) die("socket");
        if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_ALL, &zero, sizeof zero) < 0) die("IP_MULTICAST_ALL");
        memset(&mreqn, 0, sizeof mreqn);
        inet_pton(AF_INET, "224.0.0.18", &mreqn.imr_multiaddr);
        mreqn.imr_ifindex = ifindex;
        if (setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreqn, sizeof mreqn) < 0) die("IP_ADD_MEMBERSHIP");
        memset(&group, 0, sizeof group);
        group.sin_family = AF_INET;
        group.sin_addr = mreqn.imr_multiaddr;
        if (bind(fd, (struct sockaddr *)&group, sizeof group) < 0) die("bind");
        if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname, strlen(ifname) + 1) < 0) die("SO_BINDTODEVICE");
        ev.events = EPOLLIN;
        ev.data.fd = fd;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
    }
    for (int i = 0; i < RECV_BATCH; i++) {
        iov[i].iov_base = bufs[i];
        iov[i].iov_len = RECV_BUF;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    install_signals();
    printf("ready %d interfaces\n", argc);
    fflush(stdout);

    while (!stop) {
        struct epoll_event evs[MAX_IFACES];
        int n = epoll_wait(ep, evs, MAX_IFACES, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            for (;;) {
                int r = recvmmsg(evs[i].data.fd, msgs, RECV_BATCH, MSG_DONTWAIT, NULL);
                calls++;
                if (r <= 0) break; /* EAGAIN: drained */
                received += (unsigned int)r;
                if (r < RECV_BATCH) break; /* short batch: the queue is empty */
            }
        }
    }
    printf("received %llu calls %llu\n", received, calls);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "send") == 0)
        return do_send(atoll(argv[2]), argv[3]);
    if (argc >= 3 && strcmp(argv[1], "recv") == 0)
        return do_recv(argc - 2, argv + 2);
    fprintf(stderr, "usage: %s send ADVERT_INT_NS FILE | recv IFNAME:IFINDEX ...\n", argv[0]);
    return 2;
}
