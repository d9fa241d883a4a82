# session 17 runs (cwd /work/data; one thread per run, two or three at a time). A new machine: the data first.
G=/work/main/.venv/bin/gan3d
$G data prepare ../shared/data/modelnet10-32/modelnet10.npz --out modelnet10_32.npz --resolution 32
$G data prepare modelnet10_32.npz --out mn5_32_val.npz --resolution 32 --classes bed chair desk sofa table --validation 0.15
$G data prepare modelnet10_32.npz --out mn5_32.npz --resolution 32 --classes bed chair desk sofa table
$G data render mn5_32_val.npz --out mn5v_pairs8 --views 8 --size 128 --random-background --random-color
$G data render mn5_32_val.npz --out mn5v_pairs4 --views 4 --size 128 --random-background --random-color
$G data render mn5_32.npz --out mn5_pairs8 --views 8 --size 128 --random-background --random-color
$G data render mn5_32.npz --out mn5_pairs4 --views 4 --size 128 --random-background --random-color
$G data render mn5_32.npz --out mn5_photo_test4 --split test --views 4 --size 128 --photo

# how well each shipped one-class G draws held-out test shapes (no training)
for c in chair desk table; do
  $G explore invert --checkpoint vaegan-mn5-renders-$c --data mn5_32.npz --classes $c --limit 15 --starts 4 --iters 200 --out ev/inv_$c
done

# the validation parent of session 12, trained again
$G train --model vaegan --preset cpu32 --pairs mn5v_pairs8 --steps 1500 --noise-decay-steps 1500 --balance-classes --run-name vg-bal8-val --quiet
# rule D: control and --ema 0.999, each class C (chair, table; desk beside)
V="--init-from runs/vg-bal8-val/snapshot.pt --fresh-d --pairs mn5v_pairs8 --steps 750 --noise-decay-steps 750"
for c in chair table desk; do
  $G train --model vaegan --preset cpu32 $V --classes $c --run-name vg-sep-$c-val --quiet
  $G train --model vaegan --preset cpu32 $V --classes $c --ema 0.999 --run-name vg-sepema-$c-val --quiet
  for r in vg-sep-$c-val vg-sepema-$c-val; do
    $G eval reconstruction --checkpoint runs/$r --data mn5v_pairs4 --classes $c --out ev/${r}_mn5v_pairs4.json
  done
  # rule E: posterior draws at test time, on the control
  $G eval reconstruction --checkpoint runs/vg-sep-$c-val --data mn5v_pairs4 --classes $c --samples 8 --out ev/vg-sep-${c}-val_s8_mn5v_pairs4.json
done
# test side: the shipped L2 one-class command plus --ema 0.999
for c in chair table desk; do
  $G train --model vaegan --preset cpu32 --init-from vaegan-mn5-renders --pairs mn5_pairs8 --classes $c --steps 750 --noise-decay-steps 750 --ema 0.999 --run-name sepema-$c --quiet
  $G eval reconstruction --checkpoint runs/sepema-$c --data mn5_pairs4 --classes $c --out ev/sepema_${c}_pairs4.json
done

# the bookcase: procedural bookshelves as a sixth class, rendered alone
$G data prepare builtin --classes bookshelf --resolution 32 --builtin-count 400 --builtin-framing cb --out bookcase32_cb.npz
$G data merge mn5_32.npz bookcase32_cb.npz --out mn6_32.npz --rename bookshelf=bookcase
$G data render mn6_32.npz --classes bookcase --out bc_pairs8 --views 8 --size 128 --random-background --random-color
$G data render mn6_32.npz --classes bookcase --out bc_photo8 --photo --views 8 --size 128
$G data merge-pairs bc_pairs8 bc_photo8 --out bc_mix8
$G data render mn6_32.npz --classes bookcase --split test --out bc_photo_test4 --photo --views 4 --size 128
$G data render mn6_32.npz --classes bookcase --split test --out bc_pairs4 --views 4 --size 128 --random-background --random-color
$G train --model vaegan --preset cpu32 --init-from vaegan-mn5-renders --pairs bc_mix8 --classes bookcase --steps 750 --noise-decay-steps 750 --run-name sepmix-bookcase --quiet
$G train --model vaegan --preset cpu32 --init-from runs/sepmix-bookcase/snapshot.pt --pairs bc_mix8 --classes bookcase --steps 1500 --noise-decay-steps 1500 --run-name sepmix-bookcase-more --quiet
for r in sepmix-bookcase sepmix-bookcase-more; do for d in bc_photo_test4 bc_pairs4; do
  $G eval reconstruction --checkpoint runs/$r --data $d --classes bookcase --out ev/bc_${r}_$d.json
done; done
for d in bc_photo_test4 bc_pairs4; do $G eval reconstruction --checkpoint vaegan-mn5 --data $d --classes bookcase --out ev/bc_vaegan-mn5_$d.json; done
