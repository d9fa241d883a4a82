# session 19 runs (cwd /work/data; one thread per run, two at a time). Data and parents from session18/runs.sh.
G=/work/main/.venv/bin/gan3d
# rule J
for W in 2 4; do for c in chair table; do
  $G train --model vaegan --preset cpu32 --init-from runs/vg-sepema-$c-val/snapshot.pt --encoder-only --encoder-only-z mean --pairs mn5v_pairs8 --classes $c --steps 750 --ema 0.999 --recon-loss wbce --recon-pos-weight $W --run-name vg-eowb$W-$c-val --quiet
  $G eval reconstruction --checkpoint runs/vg-eowb$W-$c-val --data mn5v_pairs4 --classes $c --out ev/vg-eowb$W-${c}-val_mn5v_pairs4.json
done; done
