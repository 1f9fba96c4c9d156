// pair_style spinmultinet: see pair_spinmultinet.h and docs/lammps.md.
//
// One rank with a periodic cell: the graph is ASE's, own atoms with lattice shifts and the
// cell, so the model's stress gives the virial.
//
// Otherwise, a model that exports its stages (embed, edge_features, interaction, readout;
// metadata "stage_methods") runs with per-layer ghost exchange, exact on any number of ranks:
// ghosts only out to rc + skin, the graph's edges from own atoms to own atoms and ghosts. The
// plugin embeds every node, runs layer k for the own atoms only, and forward-communicates their
// new features to their ghosts before layer k + 1; the sum of the own atoms' energies is then
// differentiated layer by layer backwards, and the gradient on the ghost copies of layer k's
// features is reverse-communicated to their owners and added to theirs before going through
// layer k. Gradients by positions and moments of own atoms and ghosts are forces and magnetic
// forces, which LAMMPS's reverse communication (newton on) adds to the owners. From the
// model's low_memory_edges edges on a rank (as the model's forward switches), and if the model
// exports the parts, the layers run without autograd and the backward recomputes each layer
// edge chunk by edge chunk (the model's low-memory path), with the same exchanges.
//
// A model exported before the stage methods runs whole on each rank: a model with L
// message-passing layers and cutoff rc gives atom i an energy that depends on every atom
// within L * rc. Each rank keeps ghosts out to L * rc + skin (the communication cutoff, set
// here), builds the graph over its own atoms and ghosts with plain Cartesian positions
// (ghosts are the periodic images, so no lattice shifts), and asks the model for E_local =
// sum of its own atoms' energies (the model's energy_mask). Then -dE_local/dx lands on own
// atoms and ghosts alike; LAMMPS's reverse communication (newton on) adds the ghost parts to
// their owners, so the total force on an atom is -dE/dx of the whole system. The magnetic
// forces go the same way.
//
// fix nve/spin (one rank, image mode, group all) advances the spins one by one, asking
// compute_single_pair for each spin's magnetic force. The model's field is many-body, so
// each pair of sweeps over the own atoms (half a step of spin motion) takes the field of one
// model evaluation at predicted midpoint spins (midpoint_field): three model evaluations per
// step besides compute(), which store only the magnetic forces.
//
// In both ghost schemes the virial is the symmetric part of sum_i x_i f_i over own atoms and
// ghosts before the reverse communication: each rank's forces are -dE/dx_i of edge vectors
// x_j - x_i (through whatever the other ranks add), so the sum is -sum_edges r (dE/dr)^T.

#include "pair_spinmultinet.h"

#include "atom.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "fix.h"
#include "force.h"
#include "group.h"
#include "json.h"
#include "memory.h"
#include "modify.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "update.h"
#include "utils.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <initializer_list>
#include <unordered_map>

using namespace LAMMPS_NS;
using SpinMultiNetLAMMPS::PairSpinMultiNet;

namespace {

constexpr const char *METADATA_FILE = "spinmultinet_metadata.json";
constexpr int FORMAT_VERSION = 2;    // reads versions 1 and 2 (they differ in spin mode names)

// The tensors of a TorchScript method's tuple result.
std::vector<torch::Tensor> tensors(const c10::IValue &value)
{
  std::vector<torch::Tensor> out;
  for (const auto &element : value.toTupleRef().elements()) out.push_back(element.toTensor());
  return out;
}

// Features (N, D), or (K, N, D) for K spin copies, as rows of one atom each: (N, K D).
torch::Tensor as_rows(const torch::Tensor &features)
{
  if (features.dim() == 2) return features;
  return features.transpose(0, 1).reshape({features.size(1), -1});
}

// Rows (N, K D) back in the layout of `like` (2-D, or K copies in 3-D).
torch::Tensor like_features(const torch::Tensor &rows, const torch::Tensor &like)
{
  if (like.dim() == 2) return rows.contiguous();
  return rows.reshape({rows.size(0), like.size(0), -1}).transpose(0, 1).contiguous();
}

// Gradients by `inputs` of `outputs` weighted by `weights` (zeros where unused).
std::vector<torch::Tensor> gradients(const std::vector<torch::Tensor> &outputs,
                                     const std::vector<torch::Tensor> &inputs,
                                     const std::vector<torch::Tensor> &weights)
{
  auto found = torch::autograd::grad(outputs, inputs, weights, false, false, true);
  for (size_t k = 0; k < found.size(); k++)
    if (!found[k].defined()) found[k] = torch::zeros_like(inputs[k]);
  return found;
}

// One output of the whole model as a contiguous float64 tensor.
torch::Tensor output_tensor(const c10::impl::GenericDict &output, const char *key)
{
  return output.at(key).toTensor().detach().to(torch::kFloat64).contiguous();
}

// A detached copy of each tensor that requires grad: the boundary of one stage.
std::vector<torch::Tensor> leaves(const std::vector<torch::Tensor> &values)
{
  std::vector<torch::Tensor> out;
  for (const auto &value : values) out.push_back(value.detach().requires_grad_(true));
  return out;
}

}    // namespace

PairSpinMultiNet::PairSpinMultiNet(LAMMPS *lmp) : PairSpin(lmp)
{
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  ghostneigh = 1;
  no_virial_fdotr_compute = 0;    // PairSpin sets it; the virial here is by fdotr
  nlocal_max = 0;
}

PairSpinMultiNet::~PairSpinMultiNet()
{
  memory->destroy(emag);
  memory->destroy(field);
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
    memory->destroy(cutghost);
  }
}

void PairSpinMultiNet::allocate()
{
  allocated = 1;
  const int n = atom->ntypes + 1;
  memory->create(setflag, n, n, "pair:setflag");
  memory->create(cutsq, n, n, "pair:cutsq");
  memory->create(cutghost, n, n, "pair:cutghost");
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) setflag[i][j] = 0;
}

// pair_style spinmultinet MODEL.pt
void PairSpinMultiNet::settings(int narg, char **arg)
{
  if (narg != 1)
    error->all(FLERR, "pair_style spinmultinet takes one argument, the model file: "
                      "pair_style spinmultinet MODEL.pt");
  load_model(arg[0]);
}

void PairSpinMultiNet::load_model(const std::string &path)
{
  std::unordered_map<std::string, std::string> extra_files{{METADATA_FILE, ""}};
  try {
    model = torch::jit::load(path, torch::kCPU, extra_files);
  } catch (const std::exception &err) {
    error->all(FLERR, "pair_style spinmultinet: cannot load {} as a TorchScript model ({})",
               path, utils::split_lines(err.what())[0]);
  }
  model.eval();
  const std::string &text = extra_files[METADATA_FILE];
  if (text.empty())
    error->all(FLERR, "pair_style spinmultinet: {} is a TorchScript file but not a SpinMultiNet "
               "model (no {}); export one with `spinmultinet export`", path, METADATA_FILE);

  json metadata;
  try {
    metadata = json::parse(text);
    const int version = metadata.at("format_version").get<int>();
    if (version < 1 || version > FORMAT_VERSION)
      error->all(FLERR, "pair_style spinmultinet: {} has model format version {}, this plugin "
                 "reads versions 1 to {}; re-export the model", path,
                 metadata.at("format_version").dump(), FORMAT_VERSION);
    cutoff = metadata.at("cutoff").get<double>();
    num_layers = metadata.at("model_config").at("num_layers").get<int>();
    species = metadata.at("species").get<std::vector<std::string>>();
    // every mode but collinear reads (N, 3) moments (noncollinear, noncollinear_soc)
    noncollinear = metadata.at("spin_mode").get<std::string>() != "collinear";
    const auto name = metadata.at("dtype").get<std::string>();
    if (name == "float64")
      dtype = torch::kFloat64;
    else if (name == "float32")
      dtype = torch::kFloat32;
    else
      error->all(FLERR, "pair_style spinmultinet: {} has dtype {}; expected float32 or float64",
                 path, name);
  } catch (const json::exception &err) {
    error->all(FLERR, "pair_style spinmultinet: the metadata of {} is not what `spinmultinet "
               "export` writes ({}); re-export the model", path, err.what());
  }

  bool has_mask = false;
  if (metadata.contains("optional_inputs"))
    for (const auto &input : metadata["optional_inputs"])
      if (input.get<std::string>() == "energy_mask") has_mask = true;
  if (!has_mask)
    error->all(FLERR, "pair_style spinmultinet: {} was exported by spinmultinet-ase {}, before "
               "models took the energy_mask input LAMMPS needs; re-export it with "
               "`spinmultinet export CHECKPOINT {}` from a current version", path,
               metadata.value("package_version", std::string("?")), path);

  for (const auto &parameter : model.parameters()) {
    if (parameter.scalar_type() != dtype)
      error->all(FLERR, "pair_style spinmultinet: {} says dtype {} but its weights are {}; "
                 "re-export the model", path, metadata.at("dtype").get<std::string>(),
                 std::string(c10::toString(parameter.scalar_type())));
    break;
  }
  model_path = path;
  std::vector<std::string> methods;
  if (metadata.contains("stage_methods"))
    methods = metadata["stage_methods"].get<std::vector<std::string>>();
  auto exports = [&methods](std::initializer_list<const char *> names) {
    for (const char *name : names)
      if (std::find(methods.begin(), methods.end(), name) == methods.end()) return false;
    return true;
  };
  staged = exports({"edge_features", "embed", "interaction", "readout"});
  recomputable = staged && exports({"interaction_messages", "interaction_update",
                                    "interaction_gradients", "edge_features_gradient"});
  // the model's own switch between its normal and low-memory paths (forward)
  if (recomputable) low_memory_edges = model.attr("low_memory_edges").toInt();
  if (staged) probe_feature_widths();
  model_loaded = true;
  if (comm->me == 0)
    utils::logmesg(lmp, "pair_style spinmultinet: {} ({}, {}, cutoff {} Å, {} layers, "
                   "species {})\n", path, noncollinear ? "non-collinear" : "collinear",
                   metadata.at("dtype").get<std::string>(), cutoff, num_layers,
                   utils::join_words(species, " "));
}

// The width (doubles per atom) of each layer's output features, from one atom without edges;
// the widest one sizes LAMMPS's communication buffers (comm_forward, comm_reverse).
void PairSpinMultiNet::probe_feature_widths()
{
  torch::NoGradGuard no_grad;
  const auto options = torch::TensorOptions().dtype(dtype);
  const auto as_long = torch::TensorOptions().dtype(torch::kLong);
  const auto edge_index = torch::empty({2, 0}, as_long);
  std::vector<torch::Tensor> features, geometry;
  try {
    geometry = tensors(model.get_method("edge_features")(
        {torch::zeros({1, 3}, options), edge_index, torch::zeros({0, 3}, options)}));
    const auto moments = noncollinear ? torch::zeros({1, 3}, options) : torch::zeros({1}, options);
    features = tensors(model.get_method("embed")({torch::zeros({1}, as_long), moments}));
    feature_widths.clear();
    for (int64_t k = 0; k < num_layers; k++) {
      features = tensors(model.get_method("interaction")(
          {k, features[0], features[1], geometry[0], geometry[1], edge_index, int64_t(1)}));
      feature_widths.push_back(static_cast<int>(features[0].numel() + features[1].numel()));
    }
  } catch (const std::exception &err) {
    error->all(FLERR, "pair_style spinmultinet: the stage methods of {} fail ({}); re-export "
               "the model", model_path, utils::split_lines(err.what())[0]);
  }
  comm_forward = comm_reverse = *std::max_element(feature_widths.begin(), feature_widths.end());
}

// pair_coeff * * SYMBOL_OF_TYPE_1 SYMBOL_OF_TYPE_2 ...
void PairSpinMultiNet::coeff(int narg, char **arg)
{
  if (!allocated) allocate();
  const int ntypes = atom->ntypes;
  if (narg != 2 + ntypes || strcmp(arg[0], "*") != 0 || strcmp(arg[1], "*") != 0)
    error->all(FLERR, "pair_coeff for spinmultinet must be `pair_coeff * * S1 ... S{}`, one "
               "chemical symbol per atom type ({} types)", ntypes, ntypes);
  type_to_species.assign(ntypes + 1, -1);
  for (int t = 1; t <= ntypes; t++) {
    const std::string symbol = arg[1 + t];
    for (size_t s = 0; s < species.size(); s++)
      if (species[s] == symbol) type_to_species[t] = static_cast<int64_t>(s);
    if (type_to_species[t] < 0)
      error->all(FLERR, "pair_coeff: atom type {} is {}, which model {} does not know (its "
                 "species: {})", t, symbol, model_path, utils::join_words(species, " "));
  }
  for (int i = 1; i <= ntypes; i++)
    for (int j = i; j <= ntypes; j++) setflag[i][j] = 1;
  magmom_index();    // exists from here on, so dump and compute commands can name it
}

void PairSpinMultiNet::init_style()
{
  if (!model_loaded) error->all(FLERR, "pair_style spinmultinet: no model loaded");
  if (!atom->sp_flag)
    error->all(FLERR, "pair_style spinmultinet needs the initial moments of atom_style spin "
               "(sp: unit vector and size in μB); use `atom_style spin`");
  if (strcmp(update->unit_style, "metal") != 0)
    error->all(FLERR, "pair_style spinmultinet needs `units metal` (eV, Å, ps), not units {}",
               update->unit_style);
  if (force->newton_pair == 0)
    error->all(FLERR, "pair_style spinmultinet needs newton on (ghost forces are "
               "communicated back to their owners)");
  if (comm->mode != Comm::SINGLE)
    error->all(FLERR, "pair_style spinmultinet needs comm_modify mode single");

  // One rank, periodic in x, y and z, with an atom map: the model sees the own atoms and
  // the cell, as in ASE. Otherwise ghosts: with per-layer exchange, out to one cutoff (plus
  // the skin: atoms move between neighbour-list builds), LAMMPS's default; without, the
  // receptive field of an atom's energy, num_layers * cutoff, must be in the ghosts.
  periodic_images = comm->nprocs == 1 && domain->xperiodic && domain->yperiodic &&
      domain->zperiodic && atom->map_style != 0;

  // fix nve/spin takes every pair style whose name starts with "spin" for a SPIN package one.
  // Its sweeps ask for one spin's field at a time, and a new field per sweep is one model
  // evaluation on the whole cell: one rank (on more, the sweep runs sector by sector and a
  // collective evaluation cannot be scheduled inside it) in image mode, and a fix on group all,
  // so that each sweep asks for every own atom (compute_single_pair counts the calls;
  // atom_modify first shortens only the sweeps of a fix on the first group, never all).
  const auto spin_fixes = modify->get_fix_by_style("^nve/spin");
  spin_integrator = !spin_fixes.empty();
  for (const Fix *fix : spin_fixes)
    if (fix->igroup != 0)
      error->all(FLERR, "pair_style spinmultinet with fix nve/spin needs the fix on group all, "
                 "not {} (fix {}): each model evaluation turns every spin; use `fix {} all "
                 "nve/spin ...`, and to hold spins still `fix ID GROUP setforce/spin 0.0 0.0 "
                 "0.0`", group->names[fix->igroup], fix->id, fix->id);
  if (spin_integrator && !modify->get_fix_by_style("^langevin/spin").empty() && comm->me == 0)
    utils::logmesg(lmp, "pair_style spinmultinet: with fix langevin/spin at a temperature "
                   "above 0 the spin update is first order in the time step, not second "
                   "(docs/lammps.md, Spin-lattice dynamics)\n");
  if (spin_integrator && comm->nprocs > 1)
    error->all(FLERR, "pair_style spinmultinet with fix nve/spin runs on one MPI rank, "
               "not {}: each sweep over the spins needs a new model evaluation, which fix "
               "nve/spin's sector-by-sector sweep on several ranks cannot schedule", comm->nprocs);
  if (spin_integrator && !periodic_images)
    error->all(FLERR, "pair_style spinmultinet with fix nve/spin needs a cell periodic "
               "in x, y and z (boundary p p p)");
  if (periodic_images) {
    if (comm->me == 0)
      utils::logmesg(lmp, "pair_style spinmultinet: one rank, periodic cell: own atoms with "
                     "lattice shifts\n");
    neighbor->add_request(this, NeighConst::REQ_FULL);
  } else if (staged) {
    if (comm->me == 0)
      utils::logmesg(lmp, "pair_style spinmultinet: own atoms and ghosts out to {} Å, "
                     "features exchanged with the ghosts after each of {} layers\n",
                     cutoff + neighbor->skin, num_layers);
    neighbor->add_request(this, NeighConst::REQ_FULL);
  } else {
    const double ghost_cutoff = num_layers * cutoff + neighbor->skin;
    if (comm->cutghostuser < ghost_cutoff) comm->cutghostuser = ghost_cutoff;
    if (comm->me == 0)
      utils::logmesg(lmp, "pair_style spinmultinet: own atoms and ghosts, communication "
                     "cutoff {} Å ({} layers x {} Å + skin {} Å); re-export the model with "
                     "this version for ghosts out to one cutoff and per-layer exchange\n",
                     comm->cutghostuser, num_layers, cutoff, neighbor->skin);
    neighbor->add_request(this, NeighConst::REQ_FULL | NeighConst::REQ_GHOST);
  }
  magmom_index();
}

double PairSpinMultiNet::init_one(int i, int j)
{
  cutghost[i][j] = cutghost[j][i] = cutoff;
  return cutoff;
}

// Index of the custom per-atom property holding the predicted moments, made on first use.
int PairSpinMultiNet::magmom_index()
{
  int flag = -1, cols = -1;
  const int wanted_cols = noncollinear ? 3 : 0;
  int index = atom->find_custom(MAGMOM_PROPERTY, flag, cols);
  if (index < 0) return atom->add_custom(MAGMOM_PROPERTY, 1, wanted_cols);
  if (flag != 1 || cols != wanted_cols)
    error->all(FLERR, "per-atom property {} exists with another shape than this {} model "
               "writes", MAGMOM_PROPERTY, noncollinear ? "non-collinear" : "collinear");
  return index;
}

void PairSpinMultiNet::check_spins() const
{
  double **sp = atom->sp;
  for (int i = 0; i < atom->nlocal; i++)
    for (int k = 0; k < 4; k++)
      if (!std::isfinite(sp[i][k]))
        error->one(FLERR, "pair_style spinmultinet: atom {} has a non-finite spin; set its "
                   "direction and size in μB (read_data or `set atom ID spin/atom ...`)",
                   atom->tag[i]);
}

void PairSpinMultiNet::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);
  if (vflag_atom || cvflag_atom)
    error->all(FLERR, "pair_style spinmultinet does not compute per-atom virials");
  if (vflag_global && !vflag_fdotr)
    error->all(FLERR, "pair_style spinmultinet computes the virial by fdotr only "
               "(do not turn pair_modify fdotr off)");
  check_spins();
  // compute spin sums the per-atom magnetic energies of SPIN pair styles; the model's energy
  // has no separate magnetic part, so they are zero (all of it is in pe).
  if (atom->nlocal > nlocal_max) {
    nlocal_max = atom->nlocal;
    memory->grow(emag, nlocal_max, "pair:emag");
  }
  std::fill_n(emag, atom->nlocal, 0.0);
  if (staged && !periodic_images)
    compute_staged();
  else
    compute_whole();
}

// fix nve/spin (on group all, init_style) sweeps forward and backward over the own atoms (a
// pair of sweeps turns each spin by half a step) twice per step, around the position update.
void PairSpinMultiNet::compute_single_pair(int i, double *fmi)
{
  if (sweep_calls % (2 * atom->nlocal) == 0) midpoint_field();
  sweep_calls++;
  for (int k = 0; k < 3; k++) fmi[k] += field[i][k];
}

// field = the model's magnetic forces at the spins half way through the coming pair of sweeps,
// a quarter step ahead, predicted by turning each spin with its whole field now (this pair
// style's and the other fields fix nve/spin last added, e.g. fix precession/spin): each spin
// then turns by its field at the half step's midpoint, which makes the scheme second order.
// Not so with fix langevin/spin at a temperature above 0: fm then also holds the last sweep's
// random field, added before the fix scales the sum by the Gilbert factor, so it cannot be
// told apart from the deterministic fields here; the prediction turns the spins by a stale
// random angle and the scheme is first order (docs/lammps.md).
void PairSpinMultiNet::midpoint_field()
{
  const int nlocal = atom->nlocal;
  double **sp = atom->sp;
  double **fm = atom->fm;
  std::vector<double> others(3 * static_cast<size_t>(nlocal));
  for (int j = 0; j < nlocal; j++)
    for (int k = 0; k < 3; k++) others[3 * j + k] = fm[j][k] - field[j][k];
  if (sweep_calls > 0) evaluate_field();    // else compute()'s, at the current state

  const double dts = 0.25 * update->dt;
  std::vector<double> saved(3 * static_cast<size_t>(nlocal));
  for (int j = 0; j < nlocal; j++) {
    double h[3], s[3];
    for (int k = 0; k < 3; k++) {
      h[k] = field[j][k] + others[3 * j + k];
      s[k] = saved[3 * j + k] = sp[j][k];
    }
    const double ahead[3] = {s[0] + dts * (h[1] * s[2] - h[2] * s[1]),
                             s[1] + dts * (h[2] * s[0] - h[0] * s[2]),
                             s[2] + dts * (h[0] * s[1] - h[1] * s[0])};
    const double norm = std::sqrt(ahead[0] * ahead[0] + ahead[1] * ahead[1] +
                                  ahead[2] * ahead[2]);
    for (int k = 0; k < 3; k++) sp[j][k] = ahead[k] / norm;
  }
  evaluate_field();
  for (int j = 0; j < nlocal; j++)
    for (int k = 0; k < 3; k++) sp[j][k] = saved[3 * j + k];
}

// The own atoms' magnetic forces at the current spins and positions into field (image mode:
// init_style allows fix nve/spin only there); energies, forces, virial and predicted moments
// stay as compute() stored them.
void PairSpinMultiNet::evaluate_field()
{
  const int nlocal = atom->nlocal;
  check_spins();
  set_field(output_tensor(run_whole(whole_input(nlocal), nlocal), "magnetic_forces"));
}

// field = the own atoms' magnetic forces in the SPIN convention, from the model's -dE/dm (eV/μB).
void PairSpinMultiNet::set_field(const torch::Tensor &magnetic)
{
  const int nlocal = atom->nlocal;
  if (nlocal > field_rows) {
    field_rows = nlocal;
    memory->grow(field, field_rows, 3, "pair:field");
  }
  for (int i = 0; i < nlocal; i++) field[i][0] = field[i][1] = field[i][2] = 0.0;
  add_spin_forces(magnetic, nlocal, field);
}

// The model's species index (long) and input moments (float64, μB) of LAMMPS atoms
// 0..nnodes-1: collinear models take sp·s_z, non-collinear ones the vector sp·s.
std::pair<torch::Tensor, torch::Tensor> PairSpinMultiNet::species_and_moments(int nnodes) const
{
  const int *type = atom->type;
  double **sp = atom->sp;
  torch::Tensor species_index = torch::empty({nnodes}, torch::dtype(torch::kLong));
  torch::Tensor moments = noncollinear ? torch::empty({nnodes, 3}, torch::dtype(torch::kFloat64))
                                       : torch::empty({nnodes}, torch::dtype(torch::kFloat64));
  auto species_data = species_index.data_ptr<int64_t>();
  auto moment_data = moments.data_ptr<double>();
  for (int i = 0; i < nnodes; i++) {
    species_data[i] = type_to_species[type[i]];
    if (noncollinear)
      for (int k = 0; k < 3; k++) moment_data[3 * i + k] = sp[i][3] * sp[i][k];
    else
      moment_data[i] = sp[i][3] * sp[i][2];
  }
  return {species_index, moments};
}

// The whole model in one call (forward): image mode, or ghosts out to L * rc + skin.
void PairSpinMultiNet::compute_whole()
{
  const int nlocal = atom->nlocal;
  if (nlocal == 0) return;
  const int nnodes = periodic_images ? nlocal : nlocal + atom->nghost;
  const auto output = run_whole(whole_input(nnodes), nnodes);
  const torch::Tensor forces = output_tensor(output, "forces");
  const torch::Tensor magnetic = output_tensor(output, "magnetic_forces");
  store_results(output_tensor(output, "energies"), forces, magnetic,
                output_tensor(output, "magmoms"), nnodes);
  if (spin_integrator) {
    set_field(magnetic);
    sweep_calls = 0;
  }
  if (vflag_fdotr) {
    if (periodic_images) {
      // LAMMPS's virial is -V times the model's stress (ASE sign: (1/V) dE/d(strain)).
      const torch::Tensor stress = output_tensor(output, "stress");
      const double *sigma = stress.data_ptr<double>();
      const double volume = domain->xprd * domain->yprd * domain->zprd;
      const int pairs[6][2] = {{0, 0}, {1, 1}, {2, 2}, {0, 1}, {0, 2}, {1, 2}};
      for (int k = 0; k < 6; k++) virial[k] -= volume * sigma[3 * pairs[k][0] + pairs[k][1]];
    } else {
      virial_symmetric_fdotr(forces.data_ptr<double>(), nnodes);
    }
  }
}

PairSpinMultiNet::Edges PairSpinMultiNet::cutoff_edges(int ncentres, bool images) const
{
  const int nlocal = atom->nlocal;
  double **x = atom->x;
  const double cutoff_sq = cutoff * cutoff;
  std::vector<int64_t> centres, neighbours;
  std::vector<double> shifts;
  for (int ii = 0; ii < ncentres; ii++) {
    const int i = list->ilist[ii];
    const int *jlist = list->firstneigh[i];
    for (int jj = 0; jj < list->numneigh[i]; jj++) {
      const int j = jlist[jj] & NEIGHMASK;
      const double d[3] = {x[j][0] - x[i][0], x[j][1] - x[i][1], x[j][2] - x[i][2]};
      if (d[0] * d[0] + d[1] * d[1] + d[2] * d[2] >= cutoff_sq) continue;
      centres.push_back(i);
      if (!images) {
        neighbours.push_back(j);
        continue;
      }
      const int owner = j < nlocal ? j : atom->map(atom->tag[j]);
      if (owner < 0 || owner >= nlocal)
        error->one(FLERR, "pair_style spinmultinet: no own atom for ghost of atom {}",
                   atom->tag[j]);
      neighbours.push_back(owner);
      // x_j - x_owner = n_a a + n_b b + n_c c with the box's lattice vectors
      // a = (xprd, 0, 0), b = (xy, yprd, 0), c = (xz, yz, zprd).
      double image[3];
      for (int k = 0; k < 3; k++) image[k] = x[j][k] - x[owner][k];
      const double nc = std::round(image[2] / domain->zprd);
      const double nb = std::round((image[1] - nc * domain->yz) / domain->yprd);
      const double na = std::round((image[0] - nc * domain->xz - nb * domain->xy) / domain->xprd);
      shifts.insert(shifts.end(), {na, nb, nc});
    }
  }
  const int64_t nedges = static_cast<int64_t>(centres.size());
  Edges edges;
  edges.index = torch::empty({2, nedges}, torch::dtype(torch::kLong));
  std::copy(centres.begin(), centres.end(), edges.index.data_ptr<int64_t>());
  std::copy(neighbours.begin(), neighbours.end(), edges.index.data_ptr<int64_t>() + nedges);
  if (images) {
    edges.shifts = torch::empty({nedges, 3}, torch::dtype(torch::kFloat64));
    std::copy(shifts.begin(), shifts.end(), edges.shifts.data_ptr<double>());
  }
  return edges;
}

// Graph over the model's nodes 0..nnodes-1 (LAMMPS indices), every pair closer than the
// cutoff in both directions. Ghost mode: nodes are own atoms and ghosts, no lattice shifts.
// Image mode (one rank): nodes are own atoms, a ghost neighbour is its owner plus a shift.
c10::Dict<std::string, torch::Tensor> PairSpinMultiNet::whole_input(int nnodes) const
{
  const int nlocal = atom->nlocal;
  const Edges edges =
      cutoff_edges(periodic_images ? list->inum : list->inum + list->gnum, periodic_images);

  const auto as_double = torch::TensorOptions().dtype(torch::kFloat64);
  const auto as_long = torch::TensorOptions().dtype(torch::kLong);
  torch::Tensor positions =
      torch::from_blob(&atom->x[0][0], {nnodes, 3}, as_double).to(dtype, false, true);
  auto [species_index, moments] = species_and_moments(nnodes);
  torch::Tensor cell = torch::zeros({1, 3, 3}, as_double);
  if (periodic_images) {
    const double box[3][3] = {{domain->xprd, 0.0, 0.0},
                              {domain->xy, domain->yprd, 0.0},
                              {domain->xz, domain->yz, domain->zprd}};
    std::copy(&box[0][0], &box[0][0] + 9, cell.data_ptr<double>());
  }
  const torch::Tensor edge_shift =
      periodic_images ? edges.shifts : torch::zeros({edges.index.size(1), 3}, as_double);

  c10::Dict<std::string, torch::Tensor> input;
  input.insert("positions", positions);
  input.insert("species", species_index);
  input.insert("cell", cell.to(dtype));
  input.insert("pbc", torch::full({1, 3}, periodic_images, torch::dtype(torch::kBool)));
  input.insert("batch", torch::zeros({nnodes}, as_long));
  input.insert("edge_index", edges.index);
  input.insert("edge_cell_shift", edge_shift.to(dtype));
  input.insert("initial_magmoms", moments.to(dtype));
  input.insert("energy_mask", torch::arange(nnodes, as_long) < nlocal);
  return input;
}

c10::impl::GenericDict PairSpinMultiNet::run_whole(
    const c10::Dict<std::string, torch::Tensor> &input, int nnodes)
{
  try {
    return model.forward({input}).toGenericDict();
  } catch (const std::exception &err) {
    error->one(FLERR, "pair_style spinmultinet: the model failed on a graph of {} atoms ({} "
               "own): {}", nnodes, atom->nlocal, utils::split_lines(err.what())[0]);
  }
  return c10::impl::GenericDict(c10::StringType::get(), c10::TensorType::get());
}

// Adds the model's magnetic forces -dE/dm (double, (nnodes,) or (nnodes, 3)) of atoms
// 0..nnodes-1 to out in the SPIN package's convention (as pair spin/exchange): fm_i =
// -(1/hbar) dE/ds_i for the unit vector s_i, in rad/ps. The model's input moment is m_i =
// |sp_i| s_i (non-collinear) or |sp_i| s_iz (collinear), so dE/ds_i = |sp_i| dE/dm_i (along z
// for collinear models).
void PairSpinMultiNet::add_spin_forces(const torch::Tensor &magnetic, int nnodes,
                                       double **out) const
{
  double **sp = atom->sp;
  const double *magnetic_data = magnetic.data_ptr<double>();
  for (int i = 0; i < nnodes; i++) {
    const double scale = sp[i][3] / hbar;
    if (noncollinear)
      for (int k = 0; k < 3; k++) out[i][k] += scale * magnetic_data[3 * i + k];
    else
      out[i][2] += scale * magnetic_data[i];
  }
}

// Adds forces and magnetic forces (double, (nnodes, 3) and (nnodes,) or (nnodes, 3)) to the
// first nnodes atoms, and stores the own atoms' predicted moments and energies.
void PairSpinMultiNet::store_results(const torch::Tensor &energies, const torch::Tensor &forces,
                                     const torch::Tensor &magnetic, const torch::Tensor &predicted,
                                     int nnodes)
{
  const int nlocal = atom->nlocal;
  double **f = atom->f;
  const double *energy_data = energies.data_ptr<double>();
  const double *force_data = forces.data_ptr<double>();
  const double *predicted_data = predicted.data_ptr<double>();

  for (int i = 0; i < nnodes; i++)
    for (int k = 0; k < 3; k++) f[i][k] += force_data[3 * i + k];

  add_spin_forces(magnetic, nnodes, atom->fm);

  const int index = magmom_index();
  if (noncollinear) {
    double **out = atom->darray[index];
    for (int i = 0; i < nlocal; i++)
      for (int k = 0; k < 3; k++) out[i][k] = predicted_data[3 * i + k];
  } else {
    double *out = atom->dvector[index];
    for (int i = 0; i < nlocal; i++) out[i] = predicted_data[i];
  }

  if (eflag_global)
    for (int i = 0; i < nlocal; i++) eng_vdwl += energy_data[i];
  if (eflag_atom)
    for (int i = 0; i < nlocal; i++) eatom[i] += energy_data[i];
}

// Per-layer ghost exchange (file comment). Every rank takes part in each layer's forward and
// reverse communication, also a rank without own atoms.
void PairSpinMultiNet::compute_staged()
{
  const int nlocal = atom->nlocal;
  const int nall = nlocal + atom->nghost;
  if (nlocal == 0) {
    for (int k = 0; k + 1 < num_layers; k++) {
      exchange_width = feature_widths[k];
      exchange.assign(static_cast<size_t>(nall) * exchange_width, 0.0);
      comm->forward_comm(this, exchange_width);
    }
    for (int k = num_layers - 2; k >= 0; k--) {
      exchange_width = feature_widths[k];
      exchange.assign(static_cast<size_t>(nall) * exchange_width, 0.0);
      comm->reverse_comm(this, exchange_width);
    }
    return;
  }
  // Edges from own atoms to own atoms and ghosts.
  const torch::Tensor edge_index = cutoff_edges(list->inum, false).index;
  const int64_t nedges = edge_index.size(1);
  const auto as_double = torch::TensorOptions().dtype(torch::kFloat64);

  auto [species_index, moments] = species_and_moments(nall);
  const torch::Tensor positions =
      torch::from_blob(&atom->x[0][0], {nall, 3}, as_double).to(dtype, false, true);
  moments = moments.to(dtype).requires_grad_(true);

  StageResults found;
  try {
    torch::AutoGradMode grad_mode(true);
    if (recomputable && nedges >= low_memory_edges)
      found = run_stages_recomputed(positions, moments, species_index, edge_index);
    else
      found = run_stages(positions.requires_grad_(true), moments, species_index, edge_index);
  } catch (const std::exception &err) {
    error->one(FLERR, "pair_style spinmultinet: the model failed on {} own atoms and {} "
               "ghosts: {}", nlocal, nall - nlocal, utils::split_lines(err.what())[0]);
  }
  auto as_result = [](const torch::Tensor &value) {
    return value.detach().to(torch::kFloat64).contiguous();
  };
  const torch::Tensor forces = as_result(-found.grad_positions);
  store_results(as_result(found.energies), forces, as_result(-found.grad_moments),
                as_result(found.predicted), nall);
  if (vflag_fdotr) virial_symmetric_fdotr(forces.data_ptr<double>(), nall);
}

// The stages with autograd: each stage's inputs are leaves, every layer's graph is kept, and
// the backward walks the stages one by one.
PairSpinMultiNet::StageResults PairSpinMultiNet::run_stages(const torch::Tensor &positions,
                                                            const torch::Tensor &moments,
                                                            const torch::Tensor &species,
                                                            const torch::Tensor &edge_index)
{
  const int64_t nall = positions.size(0), receivers = atom->nlocal;
  const auto geometry_out = tensors(model.get_method("edge_features")(
      {positions, edge_index, torch::zeros({edge_index.size(1), 3}, positions.options())}));
  const auto geometry = leaves(geometry_out);
  const auto embedded = tensors(model.get_method("embed")({species, moments}));
  std::vector<std::vector<torch::Tensor>> inputs{leaves(embedded)}, outputs;
  for (int64_t k = 0; k < num_layers; k++) {
    const auto &in = inputs.back();
    outputs.push_back(tensors(model.get_method("interaction")(
        {k, in[0], in[1], geometry[0], geometry[1], edge_index, receivers})));
    if (k + 1 < num_layers) inputs.push_back(leaves(to_ghosts(outputs.back(), nall)));
  }
  const auto last = leaves(outputs.back());
  const auto readout =
      tensors(model.get_method("readout")({last[0], last[1], species.slice(0, 0, receivers)}));

  // The gradient on layer k's output of own atoms is the local one plus what the other
  // ranks' (and this rank's) ghost copies of those atoms received.
  auto grad_own = gradients({readout[0].sum()}, last, {});
  std::vector<torch::Tensor> grad_geometry{torch::zeros_like(geometry[0]),
                                           torch::zeros_like(geometry[1])};
  std::vector<torch::Tensor> grad_inputs;
  for (int k = num_layers - 1; k >= 0; k--) {
    const auto found = gradients(outputs[k], {inputs[k][0], inputs[k][1], geometry[0],
                                              geometry[1]}, grad_own);
    grad_geometry[0] += found[2];
    grad_geometry[1] += found[3];
    grad_inputs = {found[0], found[1]};
    if (k > 0) grad_own = to_owners(grad_inputs, nall);
  }
  // The first layer's inputs are embedded on every node, ghosts too: no exchange.
  return {readout[0], readout[1], gradients(geometry_out, {positions}, grad_geometry)[0],
          gradients(embedded, {moments}, grad_inputs)[0]};
}

// The same by recomputation (the model's low-memory path): the layers run without autograd,
// keeping each layer's input features (own atoms and ghosts) and message sums (own atoms);
// the backward recomputes each layer edge chunk by edge chunk (interaction_gradients), which
// also sums the gradients by the edge features that edge_features_gradient turns into ones by
// positions. Exchanges as in run_stages.
PairSpinMultiNet::StageResults PairSpinMultiNet::run_stages_recomputed(
    const torch::Tensor &positions, const torch::Tensor &moments, const torch::Tensor &species,
    const torch::Tensor &edge_index)
{
  const int64_t nall = positions.size(0), receivers = atom->nlocal;
  const auto offsets = torch::zeros({edge_index.size(1), 3}, positions.options());
  const auto embedded = tensors(model.get_method("embed")({species, moments}));
  std::vector<torch::Tensor> geometry, features{embedded[0].detach(), embedded[1].detach()};
  std::vector<std::vector<torch::Tensor>> inputs, sums;
  {
    torch::NoGradGuard no_grad;
    geometry = tensors(model.get_method("edge_features")({positions, edge_index, offsets}));
    for (int64_t k = 0; k < num_layers; k++) {
      if (k > 0) features = to_ghosts(features, nall);
      inputs.push_back(features);
      sums.push_back(tensors(model.get_method("interaction_messages")(
          {k, features[0], features[1], geometry[0], geometry[1], edge_index, receivers})));
      features = tensors(model.get_method("interaction_update")(
          {k, features[0], features[1], sums.back()[0], sums.back()[1]}));
    }
  }
  const auto last = leaves(features);
  const auto readout =
      tensors(model.get_method("readout")({last[0], last[1], species.slice(0, 0, receivers)}));

  auto grad = gradients({readout[0].sum()}, last, {});
  const torch::Tensor grad_sh = torch::zeros_like(geometry[0]);
  const torch::Tensor grad_radial = torch::zeros_like(geometry[1]);
  for (int64_t k = num_layers - 1; k >= 0; k--) {
    grad = tensors(model.get_method("interaction_gradients")(
        {k, inputs[k][0], inputs[k][1], sums[k][0], sums[k][1], grad[0], grad[1], geometry[0],
         geometry[1], edge_index, grad_sh, grad_radial}));
    if (k > 0) grad = to_owners(grad, nall);
  }
  const auto grad_positions = model.get_method("edge_features_gradient")(
      {positions, edge_index, offsets, grad_sh, grad_radial}).toTensor();
  return {readout[0], readout[1], grad_positions, gradients(embedded, {moments}, grad)[0]};
}

// Features of all nodes (own atoms, then ghosts) from those of the own atoms:
// each ghost gets its owner's rows by LAMMPS's forward communication.
std::vector<torch::Tensor> PairSpinMultiNet::to_ghosts(const std::vector<torch::Tensor> &own,
                                                       int nall)
{
  const int nlocal = atom->nlocal;
  const torch::Tensor rows0 = as_rows(own[0].detach()), rows1 = as_rows(own[1].detach());
  const int64_t width0 = rows0.size(1);
  exchange_width = static_cast<int>(width0 + rows1.size(1));
  exchange.assign(static_cast<size_t>(nall) * exchange_width, 0.0);
  torch::Tensor all = torch::from_blob(exchange.data(), {nall, exchange_width},
                                       torch::TensorOptions().dtype(torch::kFloat64));
  all.slice(0, 0, nlocal).copy_(torch::cat({rows0, rows1}, 1));
  comm->forward_comm(this, exchange_width);
  const torch::Tensor full = all.to(own[0].scalar_type());
  return {like_features(full.slice(1, 0, width0), own[0]),
          like_features(full.slice(1, width0), own[1])};
}

// Gradients by the features of all nodes -> those of the own atoms, each with the gradients
// of its ghost copies added by LAMMPS's reverse communication.
std::vector<torch::Tensor> PairSpinMultiNet::to_owners(const std::vector<torch::Tensor> &grads,
                                                       int nall)
{
  const int nlocal = atom->nlocal;
  const torch::Tensor rows0 = as_rows(grads[0]), rows1 = as_rows(grads[1]);
  const int64_t width0 = rows0.size(1);
  exchange_width = static_cast<int>(width0 + rows1.size(1));
  exchange.assign(static_cast<size_t>(nall) * exchange_width, 0.0);
  torch::Tensor all = torch::from_blob(exchange.data(), {nall, exchange_width},
                                       torch::TensorOptions().dtype(torch::kFloat64));
  all.copy_(torch::cat({rows0, rows1}, 1));
  comm->reverse_comm(this, exchange_width);
  const torch::Tensor own = all.slice(0, 0, nlocal).to(grads[0].scalar_type());
  return {like_features(own.slice(1, 0, width0), grads[0]),
          like_features(own.slice(1, width0), grads[1])};
}

int PairSpinMultiNet::pack_forward_comm(int n, int *list, double *buf, int, int *)
{
  for (int i = 0; i < n; i++)
    std::copy_n(&exchange[static_cast<size_t>(list[i]) * exchange_width], exchange_width,
                buf + static_cast<size_t>(i) * exchange_width);
  return n * exchange_width;
}

void PairSpinMultiNet::unpack_forward_comm(int n, int first, double *buf)
{
  std::copy_n(buf, static_cast<size_t>(n) * exchange_width,
              &exchange[static_cast<size_t>(first) * exchange_width]);
}

int PairSpinMultiNet::pack_reverse_comm(int n, int first, double *buf)
{
  std::copy_n(&exchange[static_cast<size_t>(first) * exchange_width],
              static_cast<size_t>(n) * exchange_width, buf);
  return n * exchange_width;
}

void PairSpinMultiNet::unpack_reverse_comm(int n, int *list, double *buf)
{
  for (int i = 0; i < n; i++) {
    double *row = &exchange[static_cast<size_t>(list[i]) * exchange_width];
    const double *in = buf + static_cast<size_t>(i) * exchange_width;
    for (int k = 0; k < exchange_width; k++) row[k] += in[k];
  }
}

// The virial sum_i x_i f_i over own atoms and ghosts, symmetrised. With non-collinear moments
// the positional virial has an antisymmetric part (the torque the fixed moments exert on the
// lattice); the stress is the derivative by a symmetric strain, so only the symmetric part
// counts, as in the model's own stress.
void PairSpinMultiNet::virial_symmetric_fdotr(const double *forces, int nnodes)
{
  double **x = atom->x;
  for (int i = 0; i < nnodes; i++) {
    const double *fi = forces + 3 * i;
    virial[0] += x[i][0] * fi[0];
    virial[1] += x[i][1] * fi[1];
    virial[2] += x[i][2] * fi[2];
    virial[3] += 0.5 * (x[i][0] * fi[1] + x[i][1] * fi[0]);
    virial[4] += 0.5 * (x[i][0] * fi[2] + x[i][2] * fi[0]);
    virial[5] += 0.5 * (x[i][1] * fi[2] + x[i][2] * fi[1]);
  }
}
