using ContinualMoE.Backbones;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.LowRank;

/// <summary>Sizes and thresholds of <see cref="SplitOnShareExperts"/> (see docs/methods/seta.md for each choice).</summary>
public sealed record SplitOnShareSettings(
    int SharedRank, int SharedCapacity, int UniqueRank, int SplitCapacity, double Alpha,
    double OwnershipThreshold, double ShareThreshold, int MinFreeComponents, bool GrowShared);

/// <summary>
/// SETA's experts on any transformer's linear layers: one shared low-rank expert (a pool of rank-1 components, every
/// input uses it) and one unique expert per task (only inputs gated to that task use it). Expert 0 of
/// <see cref="Bank"/> is the pool, expert 1 + t task t's unique expert.
///
/// Split-on-share, per site and component of the pool, before training task t (t > 0):
///   owners(c) = the finished tasks u with E_u(c) >= ownership_threshold * mean over the site's active components of E_u,
///               where E_u(c) is c's output energy on task u's data measured at the end of task u;
///   a component owned by exactly one task u that the new task's data does not excite, P_t(c) < share_threshold * E_u(c),
///   carries u's specific pattern: it is split off into u's unique expert (frozen) and its pool slot is renewed (zero
///   effect, no importance, fully plastic); components owned by several tasks, or also used by the new task, stay shared
///   and anchored. Then, only if fewer than min_free_components unowned components remain at a site, new pool components
///   are switched on (growth only when needed).
/// </summary>
public sealed class SplitOnShareExperts : nn.Module
{
    [TorchSharp.Utils.ComponentName(Name = "owner_energy")]
    private readonly Tensor ownerEnergy;   // [T, sites, SharedCapacity], E_u of each pool component at the end of task u
    private readonly Tensor finished;      // [T] 1 = task finished (energies valid)

    public LowRankExperts Bank { get; }
    public ElasticAnchor Anchor { get; }
    public SplitOnShareSettings Settings { get; }
    public int TaskCount { get; }
    public IReadOnlyList<LinearLayerShape> Sites => Bank.Sites;
    public LowRankExpert Pool => Bank[0];
    public LowRankExpert Unique(int task) => Bank[1 + task];

    public SplitOnShareExperts(IReadOnlyList<LinearLayerShape> sites, int tasks, SplitOnShareSettings settings) : base(nameof(SplitOnShareExperts))
    {
        Settings = settings;
        TaskCount = tasks;
        var scaling = settings.Alpha / settings.SharedRank;   // one scaling for all, so components can move between experts
        var uniqueCapacity = Math.Max(1, settings.UniqueRank + settings.SplitCapacity);
        var experts = new List<LowRankExpert> { new(sites, settings.SharedCapacity, scaling, settings.SharedRank) };
        for (var t = 0; t < tasks; t++) experts.Add(new LowRankExpert(sites, uniqueCapacity, scaling, settings.UniqueRank));
        Bank = new LowRankExperts(sites, experts);
        Bank.Activate(0);
        Anchor = new ElasticAnchor(() => Enumerable.Range(0, sites.Count).SelectMany(s => new[] { Pool.Down(s), Pool.Up(s) }).ToList());
        ownerEnergy = zeros(tasks, sites.Count, settings.SharedCapacity);
        finished = zeros(tasks);
        register_module("bank", Bank);
        register_module("anchor", Anchor);
        register_buffer("owner_energy", ownerEnergy);
        register_buffer("finished", finished);
    }

    /// <summary>Task t's unique expert joins (trainable during task t).</summary>
    public void BeginTask(int task) => Bank.Activate(1 + task);

    /// <summary>Expert weights [B, 1 + T]: the pool at 1 for everyone, unique experts by the given task weights [B, T].</summary>
    public Tensor ExpertWeights(Tensor taskWeights)
    {
        using var scope = NewDisposeScope();
        var ones = torch.ones(taskWeights.shape[0], 1, dtype: taskWeights.dtype, device: taskWeights.device);
        return torch.cat([ones, taskWeights], 1).MoveToOuterDisposeScope();
    }

    /// <summary>End of task t: its pool energies [sites, SharedCapacity], anchoring (after the caller accumulated the
    /// task's squared gradients into <see cref="Anchor"/>), and its unique expert frozen.</summary>
    public void EndTask(int task, Tensor poolEnergy)
    {
        using (no_grad())
        {
            ownerEnergy[task].copy_(poolEnergy);
            finished[task].fill_(1);
        }
        Anchor.CommitTask();
        Bank.Freeze(1 + task);
    }

    /// <summary>Owners of pool component <paramref name="slot"/> at <paramref name="site"/> among the finished tasks.</summary>
    public List<int> Owners(int site, int slot, float[,,] energy, bool[] done)
    {
        var owners = new List<int>();
        var active = Enumerable.Range(0, Settings.SharedCapacity).Where(c => Pool.IsSlotActive(site, c)).ToList();
        for (var u = 0; u < TaskCount; u++)
        {
            if (!done[u]) continue;
            var mean = active.Average(c => energy[u, site, c]);
            if (mean > 0 && energy[u, site, slot] >= Settings.OwnershipThreshold * mean) owners.Add(u);
        }
        return owners;
    }

    /// <summary>The split-on-share rule before task <paramref name="task"/>, given the pool's energies on its data
    /// [sites, SharedCapacity]. Returns the number of components split off and of pool components added.</summary>
    public (int Split, int Grown) SplitAndGrow(int task, Tensor probeEnergy)
    {
        var energy = ToArray3(ownerEnergy);
        var done = finished.data<float>().Select(v => v > 0).ToArray();
        var probe = probeEnergy.cpu().to(float32);
        int split = 0, grown = 0;
        for (var s = 0; s < Sites.Count; s++)
        {
            var probeRow = probe[s].data<float>().ToArray();
            for (var c = 0; c < Settings.SharedCapacity; c++)
            {
                if (!Pool.IsSlotActive(s, c)) continue;
                var owners = Owners(s, c, energy, done);
                if (owners.Count != 1) continue;
                var owner = owners[0];
                if (probeRow[c] >= Settings.ShareThreshold * energy[owner, s, c]) continue;
                var target = FreeUniqueSlot(owner, s);
                if (target < 0) continue;
                Pool.CopySlotTo(s, c, Unique(owner), target);
                RenewPoolSlot(s, c, energy);
                split++;
            }
            if (!Settings.GrowShared) continue;
            var free = Enumerable.Range(0, Settings.SharedCapacity).Count(c => Pool.IsSlotActive(s, c) && Owners(s, c, energy, done).Count == 0);
            for (var c = 0; c < Settings.SharedCapacity && free < Settings.MinFreeComponents; c++)
            {
                if (Pool.IsSlotActive(s, c)) continue;
                RenewPoolSlot(s, c, energy);
                free++;
                grown++;
            }
        }
        using (no_grad()) ownerEnergy.copy_(FromArray3(energy));
        return (split, grown);
    }

    private void RenewPoolSlot(int site, int slot, float[,,] energy)
    {
        Pool.ResetSlot(site, slot);
        Anchor.Release(2 * site, 0, slot, 1);       // A row
        Anchor.Release(2 * site + 1, 1, slot, 1);   // B column
        for (var u = 0; u < TaskCount; u++) energy[u, site, slot] = 0;
    }

    private int FreeUniqueSlot(int task, int site)
    {
        var expert = Unique(task);
        for (var j = Settings.UniqueRank; j < expert.Rank; j++) if (!expert.IsSlotActive(site, j)) return j;
        return -1;
    }

    /// <summary>Active components per site in the pool and in all unique experts together.</summary>
    public IReadOnlyList<(int Shared, int Unique)> ComponentsPerSite() =>
        Enumerable.Range(0, Sites.Count).Select(s => (Pool.ActiveSlots(s),
            Enumerable.Range(0, TaskCount).Where(t => Bank.IsActive(1 + t)).Sum(t => Unique(t).ActiveSlots(s)))).ToList();

    private static float[,,] ToArray3(Tensor t)
    {
        var flat = t.cpu().to(float32).data<float>().ToArray();
        var (a, b, c) = ((int)t.shape[0], (int)t.shape[1], (int)t.shape[2]);
        var result = new float[a, b, c];
        Buffer.BlockCopy(flat, 0, result, 0, flat.Length * sizeof(float));
        return result;
    }

    private static Tensor FromArray3(float[,,] values)
    {
        var flat = new float[values.Length];
        Buffer.BlockCopy(values, 0, flat, 0, flat.Length * sizeof(float));
        return tensor(flat).reshape(values.GetLength(0), values.GetLength(1), values.GetLength(2));
    }
}
