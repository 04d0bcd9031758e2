using ContinualMoE.Backbones;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ContinualMoE.LowRank;

/// <summary>
/// A bank of low-rank experts on the frozen linear layers of any <see cref="ITransformerBackbone"/>, plugged in as its
/// <see cref="ILinearAdapterProvider"/>: delta(x) = sum_e w_e(x) * scaling_e * B_e diag(m_e) A_e x (+ merged x).
/// Experts are added (activated) per task, frozen, masked, merged into a dense delta and counted. Capacity is
/// allocated at construction so that a checkpoint's shapes never change as experts are added.
/// With <see cref="SampleWeights"/> [B, experts] each sample mixes the experts with its own weights (gating);
/// without, every active expert has weight 1.
/// </summary>
public sealed class LowRankExperts : nn.Module, ILinearAdapterProvider
{
    private readonly ModuleList<LowRankExpert> experts;
    [TorchSharp.Utils.ComponentName(Name = "active")]
    private readonly Tensor activeFlags;   // [E] 1 = in use
    [TorchSharp.Utils.ComponentName(Name = "frozen")]
    private readonly Tensor frozenFlags;   // [E] 1 = frozen
    private readonly Tensor[] merged;      // per site [out, in], only when mergeable
    private readonly Dictionary<LinearSite, int> siteIndex;
    private bool[] isActive;
    private bool[] isFrozen;
    private Tensor?[]? energySums;
    private long[]? energyCounts;
    private int energyExpert = -1;
    private Tensor?[]? inputSums;          // per site sum of x x^T while recording, null for sites not recorded
    private long[]? inputCounts;

    public IReadOnlyList<LinearLayerShape> Sites { get; }
    public bool Mergeable { get; }

    /// <param name="experts">Every expert the bank may ever use (inactive until <see cref="Activate"/>).</param>
    public LowRankExperts(IReadOnlyList<LinearLayerShape> sites, IEnumerable<LowRankExpert> experts, bool mergeable = false) : base(nameof(LowRankExperts))
    {
        Sites = sites;
        Mergeable = mergeable;
        this.experts = new ModuleList<LowRankExpert>(experts.ToArray());
        if (this.experts.Any(e => !e.Sites.SequenceEqual(sites)))
            throw new ArgumentException("every expert of a bank must adapt the bank's sites");
        siteIndex = sites.Select((s, i) => (s.Site, i)).ToDictionary(x => x.Site, x => x.i);
        isActive = new bool[this.experts.Count];
        isFrozen = new bool[this.experts.Count];
        activeFlags = zeros(this.experts.Count);
        frozenFlags = zeros(this.experts.Count);
        register_module("experts", this.experts);
        register_buffer("active", activeFlags);
        register_buffer("frozen", frozenFlags);
        merged = mergeable ? sites.Select(s => zeros(s.OutFeatures, s.InFeatures)).ToArray() : [];
        for (var i = 0; i < merged.Length; i++) register_buffer($"merged_{i}", merged[i]);
    }

    protected override void _toEpilog(ScalarType? dtype, Device? device, bool non_blocking)
    {
        base._toEpilog(dtype, device, non_blocking);
        this.RebindBuffers(merged, "merged_");
        DropHeldFactors();
    }

    /// <summary>A bank of <paramref name="count"/> experts of equal rank, scaling alpha / rank (LoRA's convention).</summary>
    public static LowRankExperts Uniform(IReadOnlyList<LinearLayerShape> sites, int count, int rank, double alpha, bool mergeable = false) =>
        new(sites, Enumerable.Range(0, count).Select(_ => new LowRankExpert(sites, rank, alpha / rank)), mergeable);

    public int Count => experts.Count;
    public LowRankExpert this[int expert] => experts[expert];
    public bool IsActive(int expert) => isActive[expert];
    public bool IsFrozen(int expert) => isFrozen[expert];

    /// <summary>Per-sample expert weights [B, <see cref="Count"/>] for the next forward passes; null: weight 1 for every active expert.</summary>
    public Tensor? SampleWeights { get; set; }

    public void Activate(int expert, bool on = true) { isActive[expert] = on; SyncFlags(); DropHeldFactors(); }

    /// <summary>A frozen expert still acts in the forward pass but is never trained again (requires_grad false).</summary>
    public void Freeze(int expert, bool on = true) { isFrozen[expert] = on; SyncFlags(); ApplyFreezing(); DropHeldFactors(); }

    /// <summary>Parameters of the active, unfrozen experts (the ones a training phase may change).</summary>
    public IReadOnlyList<Parameter> TrainableParameters(IEnumerable<int>? only = null)
    {
        ApplyFreezing();
        var chosen = only?.ToHashSet();
        return Enumerable.Range(0, Count).Where(e => isActive[e] && !isFrozen[e] && (chosen is null || chosen.Contains(e)))
            .SelectMany(e => experts[e].Parameters()).ToList();
    }

    /// <summary>Trainable numbers in use over the active experts (inactive capacity and merged deltas not counted).</summary>
    public long ActiveParameterCount(IEnumerable<int>? only = null) =>
        (only ?? Enumerable.Range(0, Count)).Where(e => isActive[e]).Sum(e => experts[e].ActiveParameterCount());

    /// <summary>Folds expert <paramref name="expert"/> into the dense per-site delta (weight 1 from then on, whatever
    /// the sample weights) and switches it off; the layer's output does not change.</summary>
    public void Merge(int expert)
    {
        if (!Mergeable) throw new InvalidOperationException("this expert bank was built without merged deltas");
        using var noGrad = no_grad();
        for (var s = 0; s < Sites.Count; s++)
        {
            using var delta = experts[expert].DenseDelta(s);
            merged[s].add_(delta);
        }
        Activate(expert, false);
    }

    public Tensor? MergedDelta(int site) => Mergeable ? merged[site] : null;

    public bool Adapts(LinearSite site) => siteIndex.ContainsKey(site);

    public Tensor? Delta(LinearSite site, Tensor input)
    {
        if (!siteIndex.TryGetValue(site, out var s)) return null;
        if (inputSums is not null) RecordInput(s, input);
        var held = inference is not null && !is_grad_enabled() ? inference : null;
        var used = held?.Used ?? UsedExperts();
        Tensor? delta = null;
        if (used.Count > 0)
        {
            // A generation step's low-rank products are a few thousand multiply-adds: faster on this thread alone (same bits).
            using var oneThread = held is not null && input.numel() <= SingleThreadedRows * input.shape[^1] ? MklThreads.OnCallingThread() : default;
            var (downT, upT) = held?.Factors(s) ?? Factors(s, used);
            var hidden = input.matmul(downT);                                                      // [..., R]
            if (energyExpert >= 0) RecordEnergy(s, input, used);
            if (SampleWeights is { } weights) hidden = hidden * (held?.Columns(weights, input.dim()) ?? Columns(weights, used, input.dim()));
            delta = hidden.matmul(upT);
        }
        if (Mergeable)
        {
            var dense = input.matmul(merged[s].t());
            delta = delta is null ? dense : delta.Plus(dense);
        }
        return delta;
    }

    private List<int> UsedExperts() => Enumerable.Range(0, Count).Where(e => isActive[e]).ToList();

    /// <summary>The used experts' factors at site <paramref name="s"/> as the matmuls take them: (scaling diag(m) A)^T
    /// [in, R] and B^T [R, out], R summed over the experts.</summary>
    private (Tensor DownT, Tensor UpT) Factors(int s, List<int> used)
    {
        var downs = used.Select(e => experts[e].Down(s) * experts[e].SlotMask[s].mul(Scalars.Of(experts[e].Scaling)).unsqueeze(1)).ToArray();
        // One expert (plain LoRA) skips the concatenations: the same contiguous [R, in] and [out, R] operands, one copy fewer each.
        var down = downs.Length == 1 ? downs[0] : torch.cat(downs, 0);
        var up = used.Count == 1 ? experts[used[0]].Up(s) : torch.cat(used.Select(e => (Tensor)experts[e].Up(s)).ToArray(), 1);
        return (down.t(), up.t());
    }

    /// <summary>Each used expert's sample weight repeated over its rank, [B, 1, ..., R] for an input of <paramref name="dims"/> dimensions.</summary>
    private Tensor Columns(Tensor weights, List<int> used, long dims)
    {
        var columns = torch.cat(used.Select(e => weights.narrow(1, e, 1).expand(-1, experts[e].Rank)).ToArray(), 1);  // [B, R]
        var shape = new long[dims];
        Array.Fill(shape, 1L);
        shape[0] = columns.shape[0];
        shape[^1] = columns.shape[1];
        return columns.reshape(shape);
    }

    /// <summary>Up to this many input rows, held low-rank products run on the calling thread: a 768-wide input at rank 8 was
    /// faster there up to 256 rows and slower from 512 rows on (two threads).</summary>
    private const long SingleThreadedRows = 256;

    private HeldFactors? inference;
    private int inferenceDepth;

    /// <summary>Until the result is disposed, and while no gradient is recorded, <see cref="Delta"/> reuses each site's
    /// masked and scaled factors (and the per-rank sample weights of one <see cref="SampleWeights"/> tensor) instead of
    /// building them at every call (about ten small libtorch operations per site, per one-token step of a generation). The factors are
    /// the same tensors as without, so the deltas are the same numbers. Activating, freezing or merging an expert drops
    /// them; nothing else may change the experts meanwhile (a generation does not).</summary>
    public IDisposable BeginInference()
    {
        inferenceDepth++;
        inference ??= new HeldFactors(this);
        return new InferenceScope(this);
    }

    private void EndInference()
    {
        if (--inferenceDepth > 0) return;
        DropHeldFactors();
    }

    private void DropHeldFactors()
    {
        inference?.Dispose();
        inference = inferenceDepth > 0 ? new HeldFactors(this) : null;
    }

    private sealed class InferenceScope(LowRankExperts bank) : IDisposable
    {
        private bool ended;

        public void Dispose()
        {
            if (ended) return;
            ended = true;
            bank.EndInference();
        }
    }

    /// <summary>What <see cref="Delta"/> computes from the experts alone, kept for a stretch of inference (built lazily per site).</summary>
    private sealed class HeldFactors(LowRankExperts bank) : IDisposable
    {
        private readonly (Tensor DownT, Tensor UpT)?[] factors = new (Tensor, Tensor)?[bank.Sites.Count];
        private Tensor? weightsSource;
        private Tensor? columns;
        private long columnDims;

        public List<int> Used { get; } = bank.UsedExperts();

        public (Tensor DownT, Tensor UpT) Factors(int s)
        {
            if (factors[s] is { } held) return held;
            using var noGrad = no_grad();
            var (downT, upT) = bank.Factors(s, Used);
            var kept = (downT.detach().DetachFromDisposeScope(), upT.detach().DetachFromDisposeScope());
            factors[s] = kept;
            return kept;
        }

        public Tensor Columns(Tensor weights, long dims)
        {
            if (!ReferenceEquals(weights, weightsSource) || columnDims != dims || columns is null || weightsSource!.IsInvalid)
            {
                columns?.Dispose();
                weightsSource = weights;
                columnDims = dims;
                using var noGrad = no_grad();
                columns = bank.Columns(weights, Used, dims).detach().DetachFromDisposeScope();
            }
            return columns;
        }

        public void Dispose()
        {
            foreach (var held in factors)
            {
                held?.DownT.Dispose();
                held?.UpT.Dispose();
            }
            Array.Clear(factors);
            columns?.Dispose();
            columns = null;
        }
    }

    /// <summary>Starts measuring, over the next forward passes, the output energy of each component of
    /// <paramref name="expert"/>: E[(a_k . x)^2] * |b_k|^2 * scaling^2, i.e. how much component k changes the layer's
    /// output on that data. <see cref="StopEnergy"/> returns it [sites, rank].</summary>
    public void StartEnergy(int expert)
    {
        energyExpert = expert;
        energySums = new Tensor?[Sites.Count];
        energyCounts = new long[Sites.Count];
    }

    public Tensor StopEnergy()
    {
        var expert = experts[energyExpert];
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var rows = new List<Tensor>();
        for (var s = 0; s < Sites.Count; s++)
        {
            var mean = energySums![s] is { } sum ? sum / Math.Max(1, energyCounts![s]) : zeros(expert.Rank);
            rows.Add(mean * expert.Up(s).square().sum(dim: 0).to(mean.device) * (expert.Scaling * expert.Scaling) * expert.SlotMask[s]);
        }
        foreach (var t in energySums!) t?.Dispose();
        energyExpert = -1;
        energySums = null;
        return stack(rows).MoveToOuterDisposeScope();
    }

    private void RecordEnergy(int s, Tensor input, List<int> used)
    {
        if (!used.Contains(energyExpert)) return;
        using var noGrad = no_grad();
        var projected = input.detach().matmul(experts[energyExpert].Down(s).detach().t());   // [..., rank]
        var flat = projected.reshape(-1, projected.shape[^1]);
        var sum = flat.square().sum(dim: 0);
        var previous = energySums![s];
        var total = previous is null ? sum.clone() : previous.Plus(sum);
        energySums[s] = total.DetachFromDisposeScope();
        previous?.Dispose();
        energyCounts![s] += flat.shape[0];
    }

    /// <summary>Starts collecting, over the next forward passes, the uncentred second moment E[x x^T] [in, in] of the
    /// input of each site in <paramref name="sites"/> (indices into <see cref="Sites"/>), over every token of every
    /// sample (InfLoRA's input representation matrix; its official Attention_LoRA.forward, get_cur_feat).</summary>
    public void StartInputMoments(IEnumerable<int> sites)
    {
        inputSums = new Tensor?[Sites.Count];
        inputCounts = new long[Sites.Count];
        foreach (var s in sites) inputSums[s] = zeros(Sites[s].InFeatures, Sites[s].InFeatures, dtype: float64).DetachFromDisposeScope();
    }

    /// <summary>Stops collecting; per site the mean x x^T (float64), or null for sites not collected.</summary>
    public Tensor?[] StopInputMoments()
    {
        var sums = inputSums ?? throw new InvalidOperationException("StartInputMoments was not called");
        using (no_grad())
            for (var s = 0; s < sums.Length; s++)
                if (sums[s] is { } sum && inputCounts![s] > 0)
                {
                    using var count = ((double)inputCounts[s]).ToScalar();
                    sum.div_(count);
                }
        inputSums = null;
        inputCounts = null;
        return sums;
    }

    /// <summary>While input moments are collected: which tokens [B, T] are real (a text batch's attention mask), so that
    /// padding does not enter E[x x^T]; null counts every token (images have no padding).</summary>
    public Tensor? InputTokenMask { get; set; }

    private void RecordInput(int s, Tensor input)
    {
        if (inputSums![s] is not { } sum) return;
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var flat = input.detach().reshape(-1, input.shape[^1]).to(float64);
        // A pass over the prompts only (the readout's pooled representation) sees the first tokens of the mask's rows.
        if (InputTokenMask is { } mask)
            flat = flat.index((input.dim() == 3 && mask.shape[1] > input.shape[1] ? mask.narrow(1, 0, input.shape[1]) : mask)
                .reshape(-1).to(ScalarType.Bool).to(flat.device));
        sum.add_(flat.t().matmul(flat).to(sum.device));
        inputCounts![s] += flat.shape[0];
    }

    /// <summary>Reads the active and frozen flags back from the buffers (call after loading a state).</summary>
    public void SyncFromState()
    {
        isActive = activeFlags.data<float>().Select(v => v > 0).ToArray();
        isFrozen = frozenFlags.data<float>().Select(v => v > 0).ToArray();
        ApplyFreezing();
        DropHeldFactors();
    }

    private void SyncFlags()
    {
        using var noGrad = no_grad();
        activeFlags.copy_(tensor(isActive.Select(a => a ? 1f : 0f).ToArray()));
        frozenFlags.copy_(tensor(isFrozen.Select(a => a ? 1f : 0f).ToArray()));
    }

    private void ApplyFreezing()
    {
        for (var e = 0; e < Count; e++)
            foreach (var p in experts[e].Parameters()) p.requires_grad = !isFrozen[e];
    }
}
