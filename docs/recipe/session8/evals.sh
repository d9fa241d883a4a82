G=/work/main/.venv/bin/gan3d
cd /work/data
chainA() {
OMP_NUM_THREADS=1 $G eval reconstruction --checkpoint runs/vaegan-bal --data mn5_pairs4 --out ev/vaegan_bal_test.json --quiet > ev/vaegan_bal_test.txt 2>&1
OMP_NUM_THREADS=1 $G eval reconstruction --checkpoint runs/vaegan-bal --data mn5_photo_test4 --out ev/vaegan_bal_photo.json --quiet > ev/vaegan_bal_photo.txt 2>&1
OMP_NUM_THREADS=1 $G eval reconstruction --checkpoint runs/vg-bal8-val --data mn5v_pairs4 --out ev/vg_bal8_val.json --quiet > ev/vg_bal8_val.txt 2>&1
}
chainB() {
for s in 9000 4500 6000 3000 7500; do
OMP_NUM_THREADS=1 $G eval classify --checkpoint runs/mn10-long/snap_$s.pt --data modelnet10_32.npz --validation 0.2 --shifted reframe erode dilate --also-test chairs32_r1.npz --no-baselines --out ev/mn10_long_${s}_val.json --quiet > ev/mn10_long_${s}_val.txt 2>&1
done
}
chainA & chainB & wait
