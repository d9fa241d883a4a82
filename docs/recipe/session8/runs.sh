# session 8 runs (cwd /work/data, OMP_NUM_THREADS=1 each)
G=/work/main/.venv/bin/gan3d
# slot 1: 3D-VAE-GAN full length with class-balanced batches (chosen on validation in session 7)
OMP_NUM_THREADS=1 $G train --model vaegan --preset cpu32 --pairs mn5_pairs4 --steps 3000 --balance-classes --run-name vaegan-bal --quiet
# slot 2: ModelNet10 long continuation (the "longer runs" lever), snapshots copied by watch.sh
OMP_NUM_THREADS=1 $G train --preset cpu32 --init-from modelnet10 --data modelnet10_32.npz --diffaugment translation cutout flip --ema 0.999 --instance-noise 0 --r1 0.1 --steps 9000 --snapshot-every 1500 --run-name mn10-long --quiet
# invariant pooling on the shipped modelnet10, validation only
OMP_NUM_THREADS=1 $G eval classify --checkpoint modelnet10 --data modelnet10_32.npz --validation 0.2 --shifted reframe erode dilate --also-test chairs32_r1.npz --invariant flip --out ev/mn10_inv_flip.json
OMP_NUM_THREADS=1 $G eval classify --checkpoint modelnet10 --data modelnet10_32.npz --validation 0.2 --shifted reframe erode dilate --also-test chairs32_r1.npz --invariant flip scale morph --out ev/mn10_inv_all.json
# more views per shape (validation): 8 views, class-balanced, 1500 steps; scored on mn5v_pairs4's validation renders
$G data render mn5_32_val.npz --out mn5v_pairs8 --views 8 --size 128 --random-background --random-color
$G data render mn5_32_val.npz --out mn5v_pairs4 --views 4 --size 128 --random-background --random-color
OMP_NUM_THREADS=1 $G train --model vaegan --preset cpu32 --pairs mn5v_pairs8 --steps 1500 --noise-decay-steps 1500 --balance-classes --run-name vg-bal8-val --quiet
OMP_NUM_THREADS=1 $G eval classify --checkpoint modelnet10 --data modelnet10_32.npz --validation 0.2 --shifted reframe erode dilate --also-test chairs32_r1.npz --invariant scale morph --out ev/mn10_inv_sm.json
OMP_NUM_THREADS=1 $G eval classify --checkpoint runs/mn10-long/snap_STEP.pt --data modelnet10_32.npz --validation 0.2 --shifted reframe erode dilate --also-test chairs32_r1.npz --no-baselines --out ev/mn10_long_STEP_val.json
$G eval classify --checkpoint runs/mn10-long/snap_3000.pt --data modelnet10_32.npz --shifted reframe erode dilate --also-test chairs32_r1.npz --out ev/mn10_long_3000_test.json
