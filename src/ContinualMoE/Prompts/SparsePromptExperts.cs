using ContinualMoE.Backbones;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ContinualMoE.Prompts;

/// <summary>How SMoPE picks and weighs experts in one forward pass.</summary>
public sealed record ExpertRouting
{
    /// <summary>Top-K sparse selection; false is the dense mode (every expert, used in the first task's warm-up).</summary>
    public bool Sparse { get; init; } = true;
    public int TopK { get; init; } = 5;
    /// <summary>Prefix logits are the aggregated score per expert shared by all query rows (SMoPE). False: per-token
    /// logits q_i . k_j / sqrt(d) for the selected experts (ablation).</summary>
    public bool AggregatedLogits { get; init; } = true;
    /// <summary>Adaptive noise strength eps (0 disables). Active only while training tasks after the first.</summary>
    public double NoiseEpsilon { get; init; }
    public bool NoiseActive { get; init; }
    /// <summary>Which experts count as frequently used (adaptive noise and prototype loss).</summary>
    public FrequentExpertRule FrequentExperts { get; init; } = FrequentExpertRule.Official;
    /// <summary>Never-used experts cannot be selected (official code's test-time option).</summary>
    public bool ExcludeUnusedExperts { get; init; }
}

/// <summary>How the frequently used experts F_j >= mean F are chosen.</summary>
public enum FrequentExpertRule
{
    /// <summary>Official code (models/zoo.py, OnePrompt.process_task_count): mean over the experts used at least once;
    /// the set is updated at the end of each task and never shrinks (an expert once frequent stays frequent).</summary>
    Official,
    /// <summary>The paper's definition: mean over all experts, recomputed from the current frequencies.</summary>
    Paper,
}

/// <summary>Routing of one block in one forward pass, kept for the router loss and frequency counting.</summary>
public sealed record RoutingRecord(int PromptedBlock, Tensor Scores, Tensor Selected, Tensor Range);

/// <summary>
/// SMoPE's single shared prefix prompt as a sparse mixture of prompt experts (Le et al., "One-Prompt Strikes Back",
/// ICLR 2026). In each prompted block and head there are N_p experts, each a prefix key and value in the head's projected
/// space. Per sample, block and head: q_bar = mean of the block's query vectors over all tokens (class token included);
/// expert score s_j = q_bar . k_j; the top-K experts of s_j - eps_j join the attention with logits s_j / sqrt(d) shared by
/// every query row and their values prepended; unselected experts take no part. Adaptive noise
/// eps_j = eps (max_k s_k - min_k s_k) [F_j >= mean F] steers new tasks away from experts old tasks use.
/// </summary>
public sealed class SparsePromptExperts : nn.Module, IAttentionPrefixProvider
{
    private readonly Parameter keys;          // [P, H, N_p, d]
    private readonly Parameter values;        // [P, H, N_p, d]
    private readonly Tensor frequencies;      // [P, H, N_p] top-K counts accumulated over finished tasks
    private readonly Tensor frequent;         // [P, H, N_p] bool: the official rule's sticky set of frequent experts
    // TorchSharp's Module.to rebinds fields by component name; without the attribute it would dispose the buffer
    // this field still points to.
    [TorchSharp.Utils.ComponentName(Name = "previous_keys")]
    private readonly Tensor previousKeys;     // [P, H, N_p, d] keys after the previous task (prototype loss)
    private readonly Dictionary<int, int> promptedIndexOfBlock;
    private readonly List<RoutingRecord> records = [];
    private readonly double scale;

    public IReadOnlyList<int> Blocks { get; }
    public int ExpertCount { get; }
    public int Heads { get; }
    public int HeadDim { get; }
    public ExpertRouting Routing { get; set; } = new();

    /// <summary>Keep routing records of the next forward passes (for the router loss or frequency counting).</summary>
    public bool Record { get; set; }

    public SparsePromptExperts(IReadOnlyList<int> blocks, int heads, int headDim, int expertCount) : base(nameof(SparsePromptExperts))
    {
        Blocks = blocks;
        Heads = heads;
        HeadDim = headDim;
        ExpertCount = expertCount;
        scale = Math.Pow(headDim, -0.5);
        promptedIndexOfBlock = blocks.Select((b, i) => (b, i)).ToDictionary(x => x.b, x => x.i);
        // Uniform [0, 1) initialisation, as in the official code.
        keys = new Parameter(rand(blocks.Count, heads, expertCount, headDim));
        values = new Parameter(rand(blocks.Count, heads, expertCount, headDim));
        frequencies = zeros(blocks.Count, heads, expertCount);
        frequent = zeros(blocks.Count, heads, expertCount, dtype: ScalarType.Bool);
        previousKeys = zeros(blocks.Count, heads, expertCount, headDim);
        register_parameter("keys", keys);
        register_parameter("values", values);
        register_buffer("frequencies", frequencies);
        register_buffer("frequent", frequent);
        register_buffer("previous_keys", previousKeys);
    }

    public Parameter Keys => keys;
    public Parameter Values => values;
    public Tensor Frequencies => frequencies;
    public Tensor PreviousKeys => previousKeys;
    public IReadOnlyList<RoutingRecord> Records => records;

    /// <summary>Frees the routing records of earlier passes.</summary>
    public void ClearRecords()
    {
        foreach (var r in records) { r.Scores.Dispose(); r.Selected.Dispose(); r.Range.Dispose(); }
        records.Clear();
    }

    public AttentionPrefix? ForBlock(int blockIndex, Tensor queries)
    {
        if (!promptedIndexOfBlock.TryGetValue(blockIndex, out var p)) return null;
        var blockKeys = keys.select(0, p);                                   // [H, N_p, d]
        var blockValues = values.select(0, p);
        var queryMean = queries.mean([2]);                          // [B, H, d]: aggregate over tokens first (one score per expert)
        var scores = einsum("bhd,hnd->bhn", queryMean, blockKeys);  // [B, H, N_p]
        var batch = queries.shape[0];

        if (!Routing.Sparse)
        {
            Remember(p, scores, Scalars.Arange(ExpertCount, device: scores.device).expand(batch, Heads, ExpertCount));
            return Routing.AggregatedLogits
                ? new AttentionPrefix { Logits = scores.mul(Scalars.Of(scale)).unsqueeze(2), Values = blockValues.unsqueeze(0) }
                : AttentionPrefix.FromKeysAndValues(blockKeys.unsqueeze(0), blockValues.unsqueeze(0));
        }

        var selected = SelectExperts(p, scores);                    // [B, H, K]
        Remember(p, scores, selected);
        var k = selected.shape[2];
        var selectedValues = gather(blockValues.unsqueeze(0).expand(batch, -1, -1, -1), 2,
            selected.unsqueeze(-1).expand(-1, -1, -1, HeadDim));    // [B, H, K, d]
        if (!Routing.AggregatedLogits)
        {
            var selectedKeys = gather(blockKeys.unsqueeze(0).expand(batch, -1, -1, -1), 2,
                selected.unsqueeze(-1).expand(-1, -1, -1, HeadDim));
            return AttentionPrefix.FromKeysAndValues(selectedKeys, selectedValues);
        }
        var selectedScores = gather(scores, 2, selected);           // [B, H, K]: gradients reach selected keys only
        return new AttentionPrefix { Logits = selectedScores.mul(Scalars.Of(scale)).view(batch, Heads, 1, k), Values = selectedValues };
    }

    /// <summary>Top-K of s - eps per sample and head (noise from <see cref="NoisePenalty"/>); never-used experts
    /// optionally excluded.</summary>
    private Tensor SelectExperts(int prompted, Tensor scores)
    {
        using var noGrad = no_grad();
        var routingScores = scores.detach();
        if (Routing.NoiseActive && Routing.NoiseEpsilon > 0)
            routingScores = routingScores - NoisePenalty(prompted, routingScores);
        if (Routing.ExcludeUnusedExperts)
        {
            var unused = frequencies.select(0, prompted).eq(Scalars.Of(0));                // [H, N_p]
            var usedCount = unused.logical_not().sum(-1).min().item<long>();
            if (usedCount >= Routing.TopK) routingScores = routingScores.masked_fill(unused.unsqueeze(0), Scalars.NegativeInfinity);
        }
        return routingScores.topk(Math.Min(Routing.TopK, ExpertCount), dim: -1).indexes;
    }

    /// <summary>eps_j = eps * (max_k s_k - min_k s_k) for experts whose accumulated frequency is at or above the mean
    /// frequency, zero otherwise. [B, H, N_p].</summary>
    public Tensor NoisePenalty(int prompted, Tensor scores)
    {
        var range = scores.amax([-1], keepdim: true) - scores.amin([-1], keepdim: true);     // [B, H, 1]
        return range.mul(Scalars.Of(Routing.NoiseEpsilon)) * FrequentExperts(prompted).unsqueeze(0).to(scores.dtype);
    }

    /// <summary>[H, N_p] true for the frequently used experts: the official rule's sticky set (see
    /// <see cref="UpdateFrequentExperts"/>), or the paper's F_j >= mean over all experts of the current frequencies.</summary>
    public Tensor FrequentExperts(int prompted)
    {
        if (Routing.FrequentExperts == FrequentExpertRule.Official) return frequent.select(0, prompted);
        var f = frequencies.select(0, prompted);
        return f.ge(f.mean([-1], keepdim: true)).logical_and(f.gt(Scalars.Of(0)));
    }

    /// <summary>The official rule's set, updated once per finished task (models/zoo.py, process_task_count): per block
    /// and head, experts with F_j >= sum F / max(1, #{F > 0}) join the set, and no expert ever leaves it.</summary>
    public void UpdateFrequentExperts()
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var used = frequencies.gt(Scalars.Of(0)).to(frequencies.dtype).sum(-1, keepdim: true).clamp_min(Scalars.Of(1));
        var mean = frequencies.sum(-1, keepdim: true) / used;
        frequent.logical_or_(frequencies.ge(mean));
    }

    public Tensor FrequentSet => frequent;

    private void Remember(int prompted, Tensor scores, Tensor selected)
    {
        if (!Record) return;
        var range = (scores.amax([-1], keepdim: true) - scores.amin([-1], keepdim: true)).detach();
        // The block runs in a dispose scope; records outlive it and are freed by ClearRecords.
        records.Add(new RoutingRecord(prompted, scores.DetachFromDisposeScope(), selected.detach().DetachFromDisposeScope(), range.DetachFromDisposeScope()));
    }

    /// <summary>
    /// Router loss: for every prompted block, head and selected slot, cross-entropy of the raw scores towards the
    /// selected index. As in the official code the unselected logits get a margin eps * range added, so the selected
    /// experts must win by that margin. Official reduction (models/zoo.py, OnePrompt.router_loss): mean over the batch,
    /// summed over blocks, heads and slots; <paramref name="sum"/> false averages over those too (1/(P H K) of it).
    /// </summary>
    public Tensor RouterLoss(double marginEpsilon, bool sum = true)
    {
        if (records.Count == 0) throw new InvalidOperationException("router loss needs recorded routing (set Record)");
        var losses = new List<Tensor>();
        foreach (var r in records)
        {
            var b = r.Scores.shape[0];
            var k = r.Selected.shape[2];
            var selectedMask = zeros_like(r.Scores, dtype: ScalarType.Bool).scatter_(2, r.Selected, ones_like(r.Selected, dtype: ScalarType.Bool));
            var logits = r.Scores.Plus(r.Range.mul(Scalars.Of(marginEpsilon)) * selectedMask.logical_not().to(r.Scores.dtype));
            var flatLogits = logits.unsqueeze(2).expand(b, Heads, k, ExpertCount).reshape(-1, ExpertCount);
            var total = nn.functional.cross_entropy(flatLogits, r.Selected.reshape(-1), reduction: nn.Reduction.Sum);
            losses.Add(total.div(Scalars.Of(sum ? b : b * Heads * k)));
        }
        var stacked = stack(losses);
        return sum ? stacked.sum() : stacked.mean();
    }

    /// <summary>
    /// Prototype loss: the keys as they were after the previous task, for its frequently used experts, are prototypes;
    /// each prototype's top-K experts under the old keys must stay its top-K under the current keys (cross-entropy of
    /// prototype . current keys towards those indices). Zero before the second task. Official reduction (models/zoo.py,
    /// OnePrompt.router_loss, second part): mean over prototype rows, summed over blocks, heads and slots;
    /// <paramref name="sum"/> false averages over those too.
    /// </summary>
    public Tensor PrototypeLoss(bool sum = true)
    {
        var losses = new List<Tensor>();
        for (var p = 0; p < Blocks.Count; p++)
        {
            var frequent = FrequentExperts(p);                                     // [H, N_p]
            var oldKeys = previousKeys.select(0, p);
            var currentKeys = keys.select(0, p);
            for (var h = 0; h < Heads; h++)
            {
                var rows = frequent.select(0, h).nonzero().squeeze(-1);
                if (rows.shape[0] == 0) continue;
                var prototypes = oldKeys.select(0, h).index_select(0, rows);       // [M, d]
                var oldTop = prototypes.matmul(oldKeys.select(0, h).t()).topk(Math.Min(Routing.TopK, ExpertCount), -1).indexes; // [M, K]
                var current = prototypes.matmul(currentKeys.select(0, h).t());    // [M, N_p]
                var k = oldTop.shape[1];
                var flat = current.unsqueeze(1).expand(-1, k, -1).reshape(-1, ExpertCount);
                var total = nn.functional.cross_entropy(flat, oldTop.reshape(-1), reduction: nn.Reduction.Sum);
                losses.Add(total.div(Scalars.Of(sum ? rows.shape[0] : rows.shape[0] * k)));
            }
        }
        if (losses.Count == 0) return zeros(1, device: keys.device).squeeze();
        var stacked = stack(losses);
        return sum ? stacked.sum() : stacked.mean();
    }

    /// <summary>Each sample's experts in every recorded block: experts are chosen per head, so per block the K experts
    /// the most heads chose (ties to the lower index), weighted by the share of heads that chose them (the counting of
    /// <see cref="AccumulateFrequencies"/> and the utilisation plot, per sample).</summary>
    public IReadOnlyList<Training.ExpertChoice> ChosenExperts()
    {
        using var noGrad = no_grad();
        var choices = new List<Training.ExpertChoice>();
        foreach (var r in records)
        {
            using var scope = NewDisposeScope();
            var batch = r.Selected.shape[0];
            var k = (int)r.Selected.shape[2];
            var heads = zeros(batch, ExpertCount, device: r.Selected.device)
                .scatter_add_(1, r.Selected.reshape(batch, -1), ones(batch, Heads * k, device: r.Selected.device));   // [B, N_p]
            // count * N_p + (N_p - 1 - j): higher counts first, and among equal counts the lower expert index.
            var tieBreak = Scalars.Arange(ExpertCount, device: heads.device).to(heads.dtype).neg().Plus(Scalars.Of(ExpertCount - 1));
            var order = heads.mul(Scalars.Of(ExpertCount)).Plus(tieBreak).topk(k, dim: -1).indexes;
            var share = heads.gather(1, order).div(Scalars.Of(Heads));
            choices.Add(new Training.ExpertChoice($"block {Blocks[r.PromptedBlock]}", order.MoveToOuterDisposeScope(), share.MoveToOuterDisposeScope()));
        }
        return choices;
    }

    /// <summary>Adds the top-K counts of the recorded passes to the frequencies, then clears the records.</summary>
    public void AccumulateFrequencies()
    {
        using var noGrad = no_grad();
        foreach (var r in records)
        {
            var counts = zeros(r.Scores.shape[0], Heads, ExpertCount, device: frequencies.device)
                .scatter_add_(2, r.Selected, ones_like(r.Selected, dtype: float32)).sum(dim: 0);  // [H, N_p]
            frequencies.select(0, r.PromptedBlock).PlusInPlace(counts);
        }
        ClearRecords();
    }

    /// <summary>Stores the current keys as the prototypes of the next task.</summary>
    public void SnapshotKeys()
    {
        using var noGrad = no_grad();
        previousKeys.copy_(keys);
    }
}
