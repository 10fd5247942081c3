# Throughput against the baselines (bench/throughput.sh sets dat and out).
# Bars: median of the rounds; whiskers: worst and best round; dashed line:
# the XDP_DROP floor (median).
set terminal pngcairo size 900,500 font ",11"
set output out
set title "64-byte packets handled per second at the LB node (one core), fresh state every round"
set ylabel "Mpps (median; whiskers: worst and best round)"
set style data histograms
set style histogram errorbars gap 1 lw 1
set style fill solid 0.8 border -1
set boxwidth 0.9
ymax = system("sed -n 's/^# ymax //p' ".dat)
if (ymax ne "") { set yrange [0:real(ymax)] } else { set yrange [0:*] }
set grid ytics
set key outside below center horizontal
floor = system("sed -n 's/^# floor //p' ".dat)
if (floor ne "") {
	set arrow from graph 0, first real(floor) to graph 1, first real(floor) \
		nohead dt 2 lw 2 lc rgb "black"
	set label sprintf("XDP\\_DROP floor %.2f", real(floor)) \
		at graph 0.01, first real(floor) offset 0, 0.6
}
plot dat using 2:3:4:xtic(1) title "aether-lb (XDP)", \
     '' using 5:6:7 title "nftables", \
     '' using 8:9:10 title "iptables + ipset/hashlimit"
