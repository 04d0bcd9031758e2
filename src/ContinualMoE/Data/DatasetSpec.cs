using System.Globalization;

namespace ContinualMoE.Data;

/// <summary>
/// Labelled data named on one line, as <c>learn --data</c> and <c>evaluate --data</c> take it: an image folder path, or
/// <c>name[:folder][:classes=LIST][:train-per-class=N][:test-per-class=N]</c> where name is a
/// <see cref="DatasetCatalog"/> dataset (what runs' <c>--dataset</c> takes), folder its root (paths may not contain ':'),
/// LIST comma-separated class indices, ranges a-b or class names, e.g. <c>fashion-mnist:classes=0-4</c>,
/// <c>generated:classes=8,9:train-per-class=20</c>, <c>image-folder:/data/birds:classes=robin,wren</c>.
/// </summary>
public sealed record DatasetSpec
{
    public const string Syntax = "an image folder, or name[:folder][:classes=0-4,7,name][:train-per-class=N][:test-per-class=N]";
    private static readonly string[] SettingNames = ["classes", "root", "train-per-class", "test-per-class"];

    /// <summary>A <see cref="DatasetCatalog"/> name ("image-folder" for a plain folder).</summary>
    public required string Name { get; init; }
    /// <summary>Full path of the dataset's folder; null: the dataset's default place.</summary>
    public string? Root { get; init; }
    /// <summary>Class indices, ranges and names as written; null: every class.</summary>
    public IReadOnlyList<string>? Classes { get; init; }
    public int? TrainPerClass { get; init; }
    public int? TestPerClass { get; init; }

    /// <summary>True for a plain folder path (no dataset name, no settings).</summary>
    public bool IsPlainFolder { get; init; }

    /// <summary>Parses <paramref name="text"/>; a one-line error names what is wrong and the syntax.</summary>
    public static DatasetSpec Parse(string text)
    {
        if (string.IsNullOrWhiteSpace(text)) throw new ContinualMoEException($"empty data spec: give {Syntax}");
        var parts = text.Split(':');
        var name = parts[0].Trim();
        if (!DatasetCatalog.Names.Contains(name, StringComparer.OrdinalIgnoreCase))
        {
            if (Directory.Exists(text)) return new DatasetSpec { Name = "image-folder", Root = Path.GetFullPath(text), IsPlainFolder = true };
            throw new ContinualMoEException(
                $"data '{text}' is neither a folder nor a dataset name ({string.Join(", ", DatasetCatalog.Names)}); give {Syntax}");
        }
        var spec = new DatasetSpec { Name = name.ToLowerInvariant() };
        foreach (var part in parts.Skip(1).Select(p => p.Trim()).Where(p => p.Length > 0))
        {
            var equals = part.IndexOf('=');
            if (equals < 0)
            {
                if (spec.Root is not null) throw new ContinualMoEException($"data spec '{text}' names two folders; give {Syntax}");
                spec = spec with { Root = Path.GetFullPath(part) };
                continue;
            }
            var key = part[..equals].Trim().ToLowerInvariant().Replace('_', '-');
            var value = part[(equals + 1)..].Trim();
            spec = key switch
            {
                "classes" => spec with { Classes = value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries) is { Length: > 0 } list ? list : throw Bad(text, part, "a list of classes") },
                "root" => spec with { Root = Path.GetFullPath(value) },
                "train-per-class" => spec with { TrainPerClass = Count(text, part, value) },
                "test-per-class" => spec with { TestPerClass = Count(text, part, value) },
                _ => throw new ContinualMoEException($"data spec '{text}': unknown setting '{key}'; settings: {string.Join(", ", SettingNames)}"),
            };
        }
        if (spec.Name == "image-folder" && spec.Root is null) throw new ContinualMoEException($"data spec '{text}': image-folder needs its folder (image-folder:/path/to/folder)");
        return spec;
    }

    private static int Count(string text, string part, string value) =>
        int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n > 0 ? n : throw Bad(text, part, "a positive integer");

    private static ContinualMoEException Bad(string text, string part, string expected) =>
        new($"data spec '{text}': '{part}' needs {expected}");

    /// <summary>The labels (of <paramref name="classNames"/>) the spec selects, ascending; every label without classes=.</summary>
    public IReadOnlyList<int> SelectedLabels(IReadOnlyList<string> classNames)
    {
        if (Classes is null) return Enumerable.Range(0, classNames.Count).ToList();
        var labels = new SortedSet<int>();
        foreach (var item in Classes)
        {
            var dash = item.IndexOf('-');
            if (int.TryParse(item, NumberStyles.None, CultureInfo.InvariantCulture, out var single)) labels.Add(CheckLabel(single, classNames));
            else if (dash > 0 && int.TryParse(item[..dash], NumberStyles.None, CultureInfo.InvariantCulture, out var from)
                     && int.TryParse(item[(dash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var to) && from <= to)
                for (var l = from; l <= to; l++) labels.Add(CheckLabel(l, classNames));
            else
            {
                var index = classNames.ToList().IndexOf(item);
                if (index < 0) throw new ContinualMoEException($"data '{this}': no class '{item}' (classes: {string.Join(", ", classNames.Take(20))}{(classNames.Count > 20 ? ", ..." : "")})");
                labels.Add(index);
            }
        }
        return labels.ToList();
    }

    private int CheckLabel(int label, IReadOnlyList<string> classNames) =>
        label < classNames.Count ? label : throw new ContinualMoEException($"data '{this}': class {label} is out of range (the dataset has {classNames.Count} classes, 0-{classNames.Count - 1})");

    /// <summary>The selected classes' samples (labels and class names unchanged), at most the per-class limits of each
    /// class, in dataset order.</summary>
    public DatasetSplits Select(DatasetSplits data, IReadOnlyList<int> labels)
    {
        IImageDataset Keep(IImageDataset set, int? perClass)
        {
            var wanted = labels.ToHashSet();
            if (wanted.Count == set.ClassNames.Count && perClass is null) return set;
            var taken = new Dictionary<int, int>();
            var indices = new List<int>();
            for (var i = 0; i < set.Count; i++)
            {
                var label = set.GetLabel(i);
                if (!wanted.Contains(label)) continue;
                taken.TryGetValue(label, out var count);
                if (perClass is int n && count >= n) continue;
                taken[label] = count + 1;
                indices.Add(i);
            }
            return new Subset(set, indices.ToArray());
        }
        return new DatasetSplits(Keep(data.Train, TrainPerClass), Keep(data.Test, TestPerClass));
    }

    /// <summary>The canonical text (folders as full paths), what a model package records and <see cref="Parse"/> reads back.</summary>
    public override string ToString()
    {
        if (IsPlainFolder) return Root!;
        var parts = new List<string> { Name };
        if (Root is not null) parts.Add(Root);
        if (Classes is not null) parts.Add("classes=" + string.Join(",", Classes));
        if (TrainPerClass is int train) parts.Add($"train-per-class={train}");
        if (TestPerClass is int test) parts.Add($"test-per-class={test}");
        return string.Join(":", parts);
    }
}
