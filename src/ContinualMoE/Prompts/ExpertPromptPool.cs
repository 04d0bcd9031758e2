using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ContinualMoE.Prompts;

/// <summary>Running moments of the similarities each expert's served samples had to its key: count, sum, sum of
/// squares, [M] float64 each. They make the in-distribution test calibrated per expert.</summary>
public sealed record SimilarityMoments(Tensor Count, Tensor Sum, Tensor Squares)
{
    public SimilarityMoments Copy() => new(Count.clone(), Sum.clone(), Squares.clone());
}

/// <summary>
/// A global pool of prefix-prompt experts that grows over time (SAMoE's "incremental global pooling", Mclaughlin et al.,
/// arXiv 2603.23436). Expert m is a key k_m [D] in the frozen backbone's query space and a prefix prompt P_m
/// [blocks, L, D] (L/2 prefix keys and L/2 prefix values per prompted block, <see cref="PrefixPrompts.AddSplit"/>).
///
/// Capacity is allocated up front, as CODA-Prompt allocates its components, so checkpoints keep fixed shapes while the
/// pool grows: experts [0, <see cref="ActiveCount"/>) are active, the rest wait. Each expert's prompt is its own
/// parameter so that a method can give each expert its own optimiser group (or none): Adam normalises gradient scale
/// per element, so a reduced rate of reuse has to be a learning rate, not a scaled gradient.
///
/// Keys are buffers, not parameters: they are set once from the samples that created the expert and never trained,
/// because the similarity moments that calibrate the in-distribution test refer to the key as it was.
/// </summary>
public sealed class ExpertPromptPool : nn.Module
{
    private readonly Tensor keys;            // [M, D], unit rows once active
    [TorchSharp.Utils.ComponentName(Name = "query_center")]
    private readonly Tensor queryCenter;     // [D], subtracted from queries before matching (zero: no centring)
    [TorchSharp.Utils.ComponentName(Name = "created_at_task")]
    private readonly Tensor createdAtTask;   // [M] int64, -1 while inactive
    [TorchSharp.Utils.ComponentName(Name = "served_count")]
    private readonly Tensor servedCount;     // [M] float64
    [TorchSharp.Utils.ComponentName(Name = "served_sum")]
    private readonly Tensor servedSum;       // [M] float64
    [TorchSharp.Utils.ComponentName(Name = "served_squares")]
    private readonly Tensor servedSquares;   // [M] float64
    private readonly List<Parameter> prompts = [];

    public IReadOnlyList<int> Blocks { get; }
    public int Capacity { get; }
    public int PromptLength { get; }
    public int Width { get; }
    public int Heads { get; }

    public ExpertPromptPool(IReadOnlyList<int> blocks, int capacity, int promptLength, int width, int heads) : base(nameof(ExpertPromptPool))
    {
        if (promptLength < 2 || promptLength % 2 != 0)
            throw new ContinualMoEException($"prompt_length must be even and at least 2 (prefix keys + values), got {promptLength}");
        if (capacity < 1) throw new ContinualMoEException($"max_experts must be at least 1, got {capacity}");
        Blocks = blocks;
        Capacity = capacity;
        PromptLength = promptLength;
        Width = width;
        Heads = heads;
        keys = zeros(capacity, width);
        queryCenter = zeros(width);
        createdAtTask = full(capacity, -1L, dtype: int64);
        servedCount = zeros(capacity, dtype: float64);
        servedSum = zeros(capacity, dtype: float64);
        servedSquares = zeros(capacity, dtype: float64);
        register_buffer("keys", keys);
        register_buffer("query_center", queryCenter);
        register_buffer("created_at_task", createdAtTask);
        register_buffer("served_count", servedCount);
        register_buffer("served_sum", servedSum);
        register_buffer("served_squares", servedSquares);
        for (var m = 0; m < capacity; m++)
        {
            var p = new Parameter(zeros(blocks.Count, promptLength, width));
            prompts.Add(p);
            register_parameter($"prompt_{m}", p);
        }
    }

    protected override void _toEpilog(ScalarType? dtype, Device? device, bool non_blocking)
    {
        base._toEpilog(dtype, device, non_blocking);
        this.RebindParameters(prompts, "prompt_");
    }

    public Tensor Keys => keys;
    /// <summary>Subtracted from every query before matching. Frozen ViT class tokens share a large common direction
    /// that puts every cosine similarity near 1; a method sets this once (e.g. the first task's mean query) and never
    /// again, because keys and moments refer to it.</summary>
    public Tensor QueryCenter => queryCenter;
    public IReadOnlyList<Parameter> Prompts => prompts;
    /// <summary>Task at which each expert entered the pool, -1 for capacity not yet used.</summary>
    public Tensor CreatedAtTask => createdAtTask;
    public SimilarityMoments Moments => new(servedCount, servedSum, servedSquares);

    /// <summary>Experts enter in order, so the active ones are [0, ActiveCount).</summary>
    public int ActiveCount => (int)createdAtTask.ge(Scalars.Of(0)).sum().item<long>();
    public int FreeCapacity => Capacity - ActiveCount;
    public long ParametersPerExpert => (long)Blocks.Count * PromptLength * Width;

    /// <summary>Queries [B, D] in the pool's matching space (centred).</summary>
    public Tensor Centre(Tensor queries) => queries - queryCenter;

    /// <summary>Cosine similarity [B, A] of centred queries [B, D] to the active keys.</summary>
    public Tensor Similarity(Tensor queries)
    {
        var active = ActiveCount;
        if (active == 0) return zeros(new[] { queries.shape[0], 0L }, device: queries.device);
        return PromptMatching.Cosine(Centre(queries), keys.narrow(0, 0, active));
    }

    /// <summary>
    /// Calibrated scores z [B, A] = (s - mean_m) / max(std_m, <paramref name="minStd"/>) of similarities [B, A] under
    /// each expert's moments: how many of its own standard deviations a sample lies from what the expert served.
    /// Experts that served nothing yet get -inf (they cannot accept a sample).
    /// </summary>
    public static Tensor CalibratedScores(Tensor similarity, SimilarityMoments moments, double minStd)
    {
        var active = similarity.shape[1];
        var count = moments.Count.narrow(0, 0, active).to(similarity.device);
        var n = count.clamp_min(Scalars.Of(1));
        var mean = moments.Sum.narrow(0, 0, active).to(similarity.device) / n;
        // Unbiased variance; one sample has no spread of its own, so the floor decides.
        var variance = (moments.Squares.narrow(0, 0, active).to(similarity.device) - mean.square() * n) / n.sub(Scalars.Of(1)).clamp_min(Scalars.Of(1));
        var std = variance.clamp_min(Scalars.Of(0)).sqrt().clamp_min(Scalars.Of(minStd));
        var z = (similarity.to(float64) - mean) / std;
        return z.masked_fill(count.eq(Scalars.Of(0)).unsqueeze(0), Scalars.NegativeInfinity).to(float32);
    }

    /// <summary>Adds one moment per sample: <paramref name="experts"/> [N] int64 served samples with similarities [N].</summary>
    public static void Accumulate(SimilarityMoments moments, Tensor experts, Tensor similarities)
    {
        using var noGrad = no_grad();
        var s = similarities.to(float64).to(moments.Count.device);
        var e = experts.to(moments.Count.device);
        moments.Count.index_add_(0, e, ones_like(s), Scalars.Of(1));
        moments.Sum.index_add_(0, e, s, Scalars.Of(1));
        moments.Squares.index_add_(0, e, s.square(), Scalars.Of(1));
    }

    /// <summary>
    /// Activates the next experts with keys from <paramref name="centroids"/> [n, D] (in the centred space). With <paramref name="orthogonalKeys"/>
    /// each key is the centroid's part orthogonal to all keys before it. Prompts are Gram-Schmidt initialised orthogonal
    /// to every earlier expert's prompt (CODA-Prompt's initialisation, <see cref="GramSchmidt"/>) with
    /// <paramref name="orthogonalPrompts"/>, uniform [0, 1) otherwise (the official SMoPE/CODA constructors' draw).
    /// Returns the new experts' index range.
    /// </summary>
    public (int Start, int End) Add(Tensor centroids, int task, bool orthogonalKeys, bool orthogonalPrompts)
    {
        var start = ActiveCount;
        var count = (int)centroids.shape[0];
        if (count > Capacity - start)
            throw new ContinualMoEException($"the expert pool is full: {count} new experts do not fit in max_experts = {Capacity} ({start} in use)");
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var end = start + count;
        for (var i = 0; i < count; i++)
        {
            var key = nn.functional.normalize(centroids[i].to(float32).to(keys.device), p: 2, dim: 0);
            if (orthogonalKeys)
            {
                var residual = key.clone();
                for (var j = 0; j < start + i; j++) residual = residual - residual.dot(keys[j]) * keys[j];
                var norm = residual.norm().item<float>();
                if (norm > 1e-4f) key = residual / norm;   // a centroid inside the old keys' span keeps its direction
            }
            keys[start + i].copy_(key);
            createdAtTask[start + i].fill_(task);
        }
        if (orthogonalPrompts)
        {
            var flat = stack(prompts.Take(end).Select(p => p.detach().reshape(-1)).ToArray());   // [end, P*L*D]
            GramSchmidt.InitialiseRows(flat, start, end);
            for (var m = start; m < end; m++) prompts[m].copy_(flat[m].view(prompts[m].shape));
        }
        else
        {
            for (var m = start; m < end; m++) prompts[m].copy_(rand_like(prompts[m]));
        }
        return (start, end);
    }

    /// <summary>
    /// Per-sample prefixes for the given routing: experts [B, K] (pool indices), weights [B, K] summing to 1, and
    /// trainable [B]: a sample that may not train its experts uses their prompts detached, so it sends exactly zero
    /// gradient to them (instance-wise masking). Only the routed experts enter the graph.
    /// </summary>
    public PrefixPrompts Prefixes(Tensor experts, Tensor weights, Tensor trainable)
    {
        var ids = experts.cpu().data<long>().ToArray();
        var unique = ids.Distinct().Order().ToArray();
        var local = new long[ids.Length];
        for (var i = 0; i < ids.Length; i++) local[i] = Array.BinarySearch(unique, ids[i]);
        var used = stack(unique.Select(m => (Tensor)prompts[(int)m]).ToArray());                    // [U, P, L, D]
        var localIndex = tensor(local, dtype: int64, device: used.device).view(experts.shape);          // [B, K]
        var gathered = used.index_select(0, localIndex.reshape(-1))
            .view(experts.shape[0], experts.shape[1], Blocks.Count, PromptLength, Width);               // [B, K, P, L, D]
        var mixed = einsum("bk,bkpld->bpld", weights.to(gathered.dtype), gathered);                    // [B, P, L, D]
        mixed = where(trainable.view(-1, 1, 1, 1), mixed, mixed.detach());
        var prefixes = new PrefixPrompts(Heads);
        for (var p = 0; p < Blocks.Count; p++) prefixes.AddSplit(Blocks[p], mixed.select(1, p));
        return prefixes;
    }

    /// <summary>
    /// Spherical k-means of unit rows [N, D] into <paramref name="k"/> clusters: centroids [k, D] (unit) and each row's
    /// cluster [N]. Deterministic: the first centroid is the row closest to the mean direction, each next one the row
    /// farthest from the centroids so far; a cluster that empties keeps its centroid.
    /// </summary>
    public static (Tensor Centroids, Tensor Assignment) SphericalKMeans(Tensor rows, int k, int iterations)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var x = nn.functional.normalize(rows.to(float32), p: 2, dim: 1);
        var n = x.shape[0];
        k = (int)Math.Min(k, n);
        var chosen = new List<long> { x.matmul(nn.functional.normalize(x.mean([0]), p: 2, dim: 0)).argmax().item<long>() };
        while (chosen.Count < k)
        {
            var closest = x.matmul(x.index_select(0, tensor(chosen.ToArray())).t()).max(1).values;   // [N]
            chosen.Add(closest.argmin().item<long>());
        }
        var centroids = x.index_select(0, tensor(chosen.ToArray())).clone();
        var assignment = x.matmul(centroids.t()).argmax(1);
        for (var it = 0; it < iterations; it++)
        {
            var sums = zeros_like(centroids).index_add_(0, assignment, x, Scalars.Of(1));
            var sizes = zeros(k).index_add_(0, assignment, ones(n), Scalars.Of(1));
            var updated = nn.functional.normalize(sums, p: 2, dim: 1);
            centroids = where(sizes.gt(Scalars.Of(0)).unsqueeze(1), updated, centroids);
            var next = x.matmul(centroids.t()).argmax(1);
            var converged = next.equal(assignment).all().item<bool>();
            assignment = next;
            if (converged) break;
        }
        return (centroids.MoveToOuterDisposeScope(), assignment.MoveToOuterDisposeScope());
    }
}
