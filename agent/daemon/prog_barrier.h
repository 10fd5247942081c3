/* SPDX-License-Identifier: GPL-2.0-only */
/* Waiting for the BPF programs that are running now, on every CPU, to
 * finish their packet (prog_barrier.c). */
#ifndef AETHER_PROG_BARRIER_H
#define AETHER_PROG_BARRIER_H

/* Returns once every BPF program run that had started when it was called
 * has ended: a packet that read a map's old value before the call is done
 * with it after. Takes an RCU grace period (a few ms, more under load).
 * 0 or -errno. */
int aeth_wait_running_programs(void);

#endif
