"""Per-shape minimum over repeated gemm_lab runs: `python3 dev/min_of.py FILE...`, one file per
configuration (the file name labels the column). Minima are robust on a shared machine."""
import collections, re, sys
best = collections.defaultdict(dict)
for f in sys.argv[1:]:
    for line in open(f):
        m = re.match(r"\s*(\S+) (ta=\d) (tb=\d)\s+([\d.]+) us.*nf4\s+([\d.]+) us", line)
        if m:
            key = " ".join(m.groups()[:3])
            for col, v in ((f, float(m.group(4))), (f + ":nf4", float(m.group(5)))):
                best[key][col] = min(best[key].get(col, 1e18), v)
cols = [c for f in sys.argv[1:] for c in (f, f + ":nf4")]
print(f"{'shape':30s}" + "".join(f"{c.split('/')[-1]:>18s}" for c in cols))
for k, v in best.items():
    print(f"{k:30s}" + "".join(f"{v.get(c, float('nan')):18.1f}" for c in cols))
