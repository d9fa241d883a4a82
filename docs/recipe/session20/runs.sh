# session 20 runs (cwd /work/data; one thread per run, two at a time). Data from session18/runs.sh.
G=/work/main/.venv/bin/gan3d
export OMP_NUM_THREADS=1
# rule N: the BCE members' E refitted by J-a, on validation.
# vg-bce-val is session 14's command again (its run was gone); the BCE children are session 16's command.
$G train --model vaegan --preset cpu32 --pairs mn5v_pairs8 --steps 1500 --noise-decay-steps 1500 --balance-classes --recon-loss bce --run-name vg-bce-val --quiet
for c in chair table; do
  $G train --model vaegan --preset cpu32 --init-from runs/vg-bce-val/snapshot.pt --fresh-d --pairs mn5v_pairs8 --classes $c --recon-loss bce --steps 750 --noise-decay-steps 750 --run-name vg-sepbce-$c-val --quiet
  $G train --model vaegan --preset cpu32 --init-from runs/vg-sepbce-$c-val/snapshot.pt --encoder-only --encoder-only-z mean --pairs mn5v_pairs8 --classes $c --steps 750 --ema 0.999 --recon-loss wbce --recon-pos-weight 2 --run-name vg-eobce-$c-val --quiet
done

# rule O: D's contrastive task, continuing the shipped modelnet10 with its own command plus --contrastive 1
$G data prepare ../shared/data/3dshapenets-chair-30/volumetric_data --out chairs32_r1.npz --resolution 32 --rotations 1
$G train --preset cpu32 --init-from modelnet10 --data modelnet10_32.npz --diffaugment translation cutout flip --ema 0.999 --instance-noise 0 --r1 0.1 --contrastive 1 --steps 3000 --snapshot-every 500 --keep-snapshots --run-name mn10-con --quiet
# rule O's comparison row, scored on this machine
$G eval classify --checkpoint modelnet10 --data modelnet10_32.npz --validation 0.2 --shifted reframe erode dilate --also-test chairs32_r1.npz --out ev20/mn10_shipped_val.json
# rule N scored: candidate and control pairs, and the members alone
for c in chair table; do
  $G eval reconstruction --checkpoint runs/vg-eowb2-$c-val+runs/vg-eobce-$c-val --data mn5v_pairs4 --classes $c --out ev20/pair_eobce_${c}_val.json
  $G eval reconstruction --checkpoint runs/vg-eowb2-$c-val+runs/vg-sepbce-$c-val --data mn5v_pairs4 --classes $c --out ev20/pair_sepbce_${c}_val.json
  $G eval reconstruction --checkpoint runs/vg-eobce-$c-val --data mn5v_pairs4 --classes $c --out ev20/eobce_${c}_val.json
  $G eval reconstruction --checkpoint runs/vg-sepbce-$c-val --data mn5v_pairs4 --classes $c --out ev20/sepbce_${c}_val.json
done
# rule O scored: each kept snapshot of mn10-con on validation
for s in 000500 001000 001500 002000 002500 003000; do
  $G eval classify --checkpoint runs/mn10-con/snapshot_$s.pt --data modelnet10_32.npz --validation 0.2 --shifted reframe erode dilate --also-test chairs32_r1.npz --out ev20/mn10_con_${s}_val.json
done
# rule O-b (started beside O and N, three runs on two cores for a while)
$G train --preset cpu32 --init-from modelnet10 --data modelnet10_32.npz --diffaugment translation cutout flip --ema 0.999 --instance-noise 0 --r1 0.1 --contrastive 4 --lr-d 0.0003 --steps 2000 --snapshot-every 500 --keep-snapshots --run-name mn10-con4 --quiet
# rule N passed: its test-side runs, from the shipped BCE members
for c in chair table desk; do
  $G train --model vaegan --preset cpu32 --init-from vaegan-mn5-renders-$c-bce --encoder-only --encoder-only-z mean --pairs mn5_pairs8 --classes $c --steps 750 --ema 0.999 --recon-loss wbce --recon-pos-weight 2 --run-name eobce-$c --quiet
done
# mn10-con4 stopped after its +1,500 snapshot (time); rule O-b passed at +1,000; that snapshot scored once on test, then packaged
$G eval classify --checkpoint runs/mn10-con4/snapshot_001000.pt --data modelnet10_32.npz --shifted reframe erode dilate --also-test chairs32_r1.npz --out ev20/mn10_con4_001000_test.json
$G eval classify --checkpoint runs/mn10-con4/snapshot_001000.pt --data modelnet10_32.npz --shifted reframe erode dilate --also-test chairs32_r1.npz --repeats 5 --out ev20/mn10_con4_001000_test_repeats5.json
$G eval generation --checkpoint runs/mn10-con4/snapshot_001000.pt --data modelnet10_32.npz --n-samples 100 --distances iou --out ev20/mn10_con4_001000_gen.json
