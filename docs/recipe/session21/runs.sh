# session 21 runs (cwd /work/data; one thread per run, two at a time). Data from session18/runs.sh.
G=/work/main/.venv/bin/gan3d
export OMP_NUM_THREADS=1
# rule P on validation: chair on one thread, table on the other (C=chair or table)
$G train --model vaegan --preset cpu32 --init-from runs/vg-bal8-val/snapshot.pt --pairs mn5v_pairs8 --classes $C --steps 750 --noise-decay-steps 750 --ema 0.999 --recon-loss wbce --recon-pos-weight 2 --run-name vg-sepwb-$C-val --quiet
$G train --model vaegan --preset cpu32 --init-from runs/vg-sepwb-$C-val/snapshot.pt --encoder-only --encoder-only-z mean --pairs mn5v_pairs8 --classes $C --steps 750 --ema 0.999 --recon-loss wbce --recon-pos-weight 2 --run-name vg-eowbwb-$C-val --quiet
