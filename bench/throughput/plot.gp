# Throughput against the baselines (bench/throughput.sh sets dat and out).
set terminal pngcairo size 900,500 font ",11"
set output out
set title "64-byte packets handled per second at the LB node (one core)"
set ylabel "Mpps (median of rounds)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set yrange [0:*]
set grid ytics
set key top right
plot dat using 2:xtic(1) title "aether-lb (XDP)", \
     '' using 3 title "nftables", \
     '' using 4 title "iptables + ipset/hashlimit"
