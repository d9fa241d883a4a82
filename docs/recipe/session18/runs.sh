# session 18 runs (cwd /work/data; one thread per run, two or three at a time). A new machine: the data first.
G=/work/main/.venv/bin/gan3d
$G data prepare ../shared/data/modelnet10-32/modelnet10.npz --out modelnet10_32.npz --resolution 32
$G data prepare modelnet10_32.npz --out mn5_32_val.npz --resolution 32 --classes bed chair desk sofa table --validation 0.15
$G data render mn5_32_val.npz --out mn5v_pairs8 --views 8 --size 128 --random-background --random-color
$G data render mn5_32_val.npz --out mn5v_pairs4 --views 4 --size 128 --random-background --random-color
$G data prepare modelnet10_32.npz --out mn5_32.npz --resolution 32 --classes bed chair desk sofa table
$G data render mn5_32.npz --out mn5_pairs4 --views 4 --size 128 --random-background --random-color
$G data render mn5_32.npz --out mn5_pairs8 --views 8 --size 128 --random-background --random-color
$G data render mn5_32_val.npz --out mn5v_photo8 --photo --views 8 --size 128
$G data merge-pairs mn5v_pairs8 mn5v_photo8 --out mn5v_mix8
$G data render mn5_32_val.npz --out mn5v_photo_val4 --split test --photo --views 4 --size 128

# the validation parent (session 12's command) and rule D's one-class runs (session 17's), the controls of rule F
$G train --model vaegan --preset cpu32 --pairs mn5v_pairs8 --steps 1500 --noise-decay-steps 1500 --balance-classes --run-name vg-bal8-val --quiet
V="--init-from runs/vg-bal8-val/snapshot.pt --fresh-d --pairs mn5v_pairs8 --steps 750 --noise-decay-steps 750"
for c in chair table; do
  $G train --model vaegan --preset cpu32 $V --classes $c --ema 0.999 --run-name vg-sepema-$c-val --quiet
  # rule F: E alone against the fixed eval-mode G
  F="--init-from runs/vg-sepema-$c-val/snapshot.pt --encoder-only --pairs mn5v_pairs8 --classes $c --ema 0.999"
  $G train --model vaegan --preset cpu32 $F --steps 750 --run-name vg-eo-$c-val --quiet
  # rule G: a tenth of the KL weight; three times the steps
  $G train --model vaegan --preset cpu32 $F --steps 750 --alpha1 0.5 --run-name vg-eoa-$c-val --quiet
  $G train --model vaegan --preset cpu32 $F --steps 2250 --run-name vg-eol-$c-val --quiet
  # rule F's second control: rule D's run continued for 750 ordinary steps
  $G train --model vaegan --preset cpu32 --init-from runs/vg-sepema-$c-val/snapshot.pt --fresh-d --pairs mn5v_pairs8 --classes $c --steps 750 --noise-decay-steps 750 --ema 0.999 --run-name vg-more-$c-val --quiet
  for r in vg-sepema-$c-val vg-eo-$c-val vg-eoa-$c-val vg-eol-$c-val vg-more-$c-val; do
    $G eval reconstruction --checkpoint runs/$r --data mn5v_pairs4 --classes $c --out ev/${r}_mn5v_pairs4.json
  done
  # rule H: the photo recipe on validation, then F on top of it, scored on photo-like validation renders
  $G train --model vaegan --preset cpu32 --init-from runs/vg-bal8-val/snapshot.pt --fresh-d --pairs mn5v_mix8 --classes $c --steps 750 --noise-decay-steps 750 --run-name vg-mix-$c-val --quiet
  $G train --model vaegan --preset cpu32 --init-from runs/vg-mix-$c-val/snapshot.pt --encoder-only --pairs mn5v_mix8 --classes $c --steps 750 --ema 0.999 --run-name vg-mixeo-$c-val --quiet
  for r in vg-mix-$c-val vg-mixeo-$c-val; do
    $G eval reconstruction --checkpoint runs/$r --data mn5v_photo_val4 --classes $c --out ev/${r}_mn5v_photo_val4.json
  done
done

# test side (trained while validation ran, scored after the verdicts): F and G-a from the shipped one-class models
for c in chair table desk; do
  $G train --model vaegan --preset cpu32 --init-from vaegan-mn5-renders-$c --encoder-only --pairs mn5_pairs8 --classes $c --steps 750 --ema 0.999 --run-name eo-$c --quiet
  $G train --model vaegan --preset cpu32 --init-from vaegan-mn5-renders-$c --encoder-only --pairs mn5_pairs8 --classes $c --steps 750 --ema 0.999 --alpha1 0.5 --run-name eoa-$c --quiet
done
