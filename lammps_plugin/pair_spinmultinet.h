// pair_style spinmultinet: a SpinMultiNet TorchScript model as a LAMMPS pair style.
//
// The pair style is thin: it turns the atoms this rank owns plus its ghosts into the model's
// graph dictionary, calls the exported model, and stores energy, forces, per-atom energies,
// predicted moments and magnetic forces back into LAMMPS. All physics is in the model.
//
// A PairSpin, so the SPIN package's fix nve/spin (which takes pair styles whose names start
// with "spin") drives it, one spin at a time through compute_single_pair (docs/lammps.md,
// "Spin-lattice dynamics").
#pragma once

#include "pair_spin_wheel.h"

#include <torch/csrc/autograd/autograd.h>
#include <torch/script.h>

#include <string>
#include <utility>
#include <vector>

namespace SpinMultiNetLAMMPS {

class PairSpinMultiNet : public LAMMPS_NS::PairSpin {
 public:
  explicit PairSpinMultiNet(LAMMPS_NS::LAMMPS *lmp);
  ~PairSpinMultiNet() override;

  void compute(int eflag, int vflag) override;
  // The magnetic force on own atom i (rad/ps) for fix nve/spin: one model evaluation per pair
  // of sweeps over the own atoms, at the spins predicted for the pair's midpoint.
  void compute_single_pair(int i, double *fmi) override;
  void settings(int narg, char **arg) override;
  void coeff(int narg, char **arg) override;
  void init_style() override;
  double init_one(int i, int j) override;

  // Per-layer ghost exchange: node features of own atoms out to their ghosts (forward), and
  // the gradients on ghost features back to their owners (reverse), exchange_width doubles
  // per atom from the rows of exchange.
  int pack_forward_comm(int n, int *list, double *buf, int pbc_flag, int *pbc) override;
  void unpack_forward_comm(int n, int first, double *buf) override;
  int pack_reverse_comm(int n, int first, double *buf) override;
  void unpack_reverse_comm(int n, int *list, double *buf) override;

  // Name of the per-atom custom property holding the predicted moments (μB): a vector
  // (d_spinmultinet_magmom) for collinear models, a 3-column array
  // (d2_spinmultinet_magmom[1..3]) for non-collinear ones.
  static constexpr const char *MAGMOM_PROPERTY = "spinmultinet_magmom";

 private:
  void allocate() override;
  void compute_whole();
  // Edges from the neighbour list's first ncentres centres to their neighbours closer than
  // the cutoff: index (2, nedges) long, centres then neighbours. With images, a ghost
  // neighbour is its owner and shifts (nedges, 3) float64 holds the lattice shifts from owner
  // to ghost; shifts is undefined otherwise.
  struct Edges {
    torch::Tensor index, shifts;
  };
  Edges cutoff_edges(int ncentres, bool images) const;
  // The model's graph input over LAMMPS atoms 0..nnodes-1 (image mode: own atoms with
  // lattice shifts; ghost mode: own atoms and ghosts), and its output on that input.
  c10::Dict<std::string, torch::Tensor> whole_input(int nnodes) const;
  c10::impl::GenericDict run_whole(const c10::Dict<std::string, torch::Tensor> &input,
                                   int nnodes);
  void evaluate_field();
  void set_field(const torch::Tensor &magnetic);
  void midpoint_field();
  void compute_staged();
  std::pair<torch::Tensor, torch::Tensor> species_and_moments(int nnodes) const;
  // Energies and predicted moments of the own atoms, gradients by positions and moments of
  // own atoms and ghosts.
  struct StageResults {
    torch::Tensor energies, predicted, grad_positions, grad_moments;
  };
  StageResults run_stages(const torch::Tensor &positions, const torch::Tensor &moments,
                          const torch::Tensor &species, const torch::Tensor &edge_index);
  StageResults run_stages_recomputed(const torch::Tensor &positions,
                                     const torch::Tensor &moments, const torch::Tensor &species,
                                     const torch::Tensor &edge_index);
  void probe_feature_widths();
  std::vector<torch::Tensor> to_ghosts(const std::vector<torch::Tensor> &own, int nall);
  std::vector<torch::Tensor> to_owners(const std::vector<torch::Tensor> &grads, int nall);
  void store_results(const torch::Tensor &energies, const torch::Tensor &forces,
                     const torch::Tensor &magnetic, const torch::Tensor &predicted, int nnodes);
  void add_spin_forces(const torch::Tensor &magnetic, int nnodes, double **out) const;
  void load_model(const std::string &path);
  void check_spins() const;
  void virial_symmetric_fdotr(const double *forces, int nnodes);
  int magmom_index();

  bool spin_integrator = false;    // fix nve/spin calls compute_single_pair
  double **field = nullptr;    // own atoms' magnetic forces (rad/ps) for compute_single_pair
  int field_rows = 0;          // allocated rows of field
  int sweep_calls = 0;         // compute_single_pair calls since compute()
  torch::jit::Module model;
  bool model_loaded = false;
  std::string model_path;
  double cutoff = 0.0;          // model cutoff radius (Å)
  int num_layers = 0;           // message-passing layers (receptive field num_layers * cutoff)
  bool noncollinear = false;    // spin mode of the model
  bool periodic_images = false;    // one rank: own atoms and lattice shifts, no ghost nodes
  bool staged = false;    // the model exports its stages: per-layer ghost exchange
  bool recomputable = false;    // ... and the parts of its low-memory backward pass
  int64_t low_memory_edges = 0;    // edges of a rank from which on the stages recompute
  std::vector<int> feature_widths;    // doubles per atom of each layer's output features
  std::vector<double> exchange;    // (own atoms + ghosts) x exchange_width, row-major
  int exchange_width = 0;
  torch::ScalarType dtype = torch::kFloat64;
  std::vector<std::string> species;    // the model's species, in its index order
  std::vector<int64_t> type_to_species;    // LAMMPS type (1-based) -> model species index
};

}    // namespace SpinMultiNetLAMMPS
