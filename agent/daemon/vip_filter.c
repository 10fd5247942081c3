/* The VIP filter's writes (vip_filter.h). */
#include "aether/vip_filter.h"
#include "aether_lb.skel.h"
#include "log.h"
#include "vip_filter.h"

/* The filter of the program a loaded, or NULL (no program, or a kernel
 * that does not map global data: the filter stays all clear). */
static __u64 *filter_of(struct aeth_agent *a)
{
	return a->skel && a->skel->bss ? a->skel->bss->lb_vip_filter : NULL;
}

void aeth_vip_filter_admit(struct aeth_agent *a, const struct vip_count *v,
			   size_t n)
{
	__u64 *f = filter_of(a);

	for (size_t i = 0; f && i < n; i++) {
		uint32_t bucket = aeth_vip_filter_bucket(&v[i].key.addr);

		__atomic_fetch_and(&f[aeth_vip_filter_word(bucket)],
				   ~aeth_vip_filter_mask(bucket),
				   __ATOMIC_SEQ_CST);
	}
}

void aeth_vip_filter_vouch(struct aeth_agent *a, uint64_t stamp)
{
	if (a->skel && a->skel->bss)
		__atomic_store_n(&a->skel->bss->lb_vip_filter_stamp, stamp,
				 __ATOMIC_SEQ_CST);
}

void aeth_vip_filter_sync(struct aeth_agent *a, const struct vip_count *v,
			  size_t n)
{
	__u64 want[AETH_VIP_FILTER_WORDS], *f = filter_of(a);

	if (!f) {
		log_warn("the program's VIP filter is not mapped: every packet "
			 "takes the VIP lookup");
		return;
	}
	aeth_vip_filter_all_set(want);
	for (size_t i = 0; i < n; i++)
		aeth_vip_filter_clear(want, &v[i].key.addr);
	for (uint32_t w = 0; w < AETH_VIP_FILTER_WORDS; w++)
		__atomic_store_n(&f[w], want[w], __ATOMIC_SEQ_CST);
}
