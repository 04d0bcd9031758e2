using System.Text.Json;

namespace ContinualMoE.Data.Text;

/// <summary>
/// The standard continual-learning benchmark of the LLM literature (O-LoRA, SAPT, InfLoRA for LLMs, SETA): AG News,
/// Amazon, Yelp, DBpedia, Yahoo (Zhang et al. 2015) and, for the 15-task long sequence, MNLI, CB, WiC, COPA, QQP, BoolQ,
/// RTE, IMDB, SST-2 and MultiRC, in the <c>CL_Benchmark</c> folder layout of the official O-LoRA code
/// (github.com/cmnfriend/O-LoRA at 07117e1, verified there):
/// <c>CL_Benchmark/&lt;family&gt;/&lt;dataset&gt;/{train,dev,test}.json</c>, each a JSON array of
/// <c>{"label": ..., "sentence": ...}</c>, and <c>labels.json</c> (the label texts, which are also the answers).
/// The prompt O-LoRA builds (src/uie_dataset_lora.py, load_*_dataset; src/uie_collator.py, get_instruction) is the
/// family's instruction, <c>"Option: " + labels joined by ", " + " \n"</c>, the sentence, then <c>"\nAnswer:"</c>; COPA has
/// no instruction and no option line. Here that is <see cref="TextExample.Instruction"/> (instruction and option line),
/// <see cref="TextExample.Input"/> (the sentence) and <see cref="PromptOf"/> for the whole prompt.
/// </summary>
public static class StandardClBenchmark
{
    /// <summary>One dataset: its name (the O-LoRA folder name), its family folder (which also keys its instruction in
    /// O-LoRA's configs/instruction_config.json) and whether it has an instruction (COPA has none).</summary>
    public sealed record Dataset(string Name, string Family, bool HasInstruction = true);

    public static IReadOnlyList<Dataset> Datasets { get; } =
    [
        new("agnews", "TC"), new("dbpedia", "TC"), new("yahoo", "TC"),
        new("amazon", "SC"), new("yelp", "SC"), new("IMDB", "SC"), new("SST-2", "SC"),
        new("MNLI", "NLI"), new("CB", "NLI"), new("RTE", "NLI"),
        new("QQP", "QQP"), new("WiC", "WiC"), new("BoolQA", "BoolQA"), new("MultiRC", "MultiRC"),
        new("COPA", "COPA", HasInstruction: false),
    ];

    /// <summary>The published task orders. 1-3 (4 tasks) are O-LoRA's scripts/order_{1,2,3}.sh; 4-6 (15 tasks) are
    /// Progressive Prompts' long-sequence orders as O-LoRA and SAPT run them (order 6 is O-LoRA's scripts/long.sh;
    /// 4 and 5 checked against the order lists in public SAPT/O-LoRA-derived run scripts).</summary>
    public static IReadOnlyDictionary<string, IReadOnlyList<string>> Orders { get; } = new Dictionary<string, IReadOnlyList<string>>(StringComparer.OrdinalIgnoreCase)
    {
        ["order1"] = ["dbpedia", "amazon", "yahoo", "agnews"],
        ["order2"] = ["dbpedia", "amazon", "agnews", "yahoo"],
        ["order3"] = ["yahoo", "amazon", "agnews", "dbpedia"],
        ["order4"] = ["MNLI", "CB", "WiC", "COPA", "QQP", "BoolQA", "RTE", "IMDB", "yelp", "amazon", "SST-2", "dbpedia", "agnews", "MultiRC", "yahoo"],
        ["order5"] = ["MultiRC", "BoolQA", "WiC", "MNLI", "CB", "COPA", "QQP", "RTE", "IMDB", "SST-2", "dbpedia", "agnews", "yelp", "amazon", "yahoo"],
        ["order6"] = ["yelp", "amazon", "MNLI", "CB", "COPA", "QQP", "RTE", "IMDB", "SST-2", "dbpedia", "agnews", "yahoo", "MultiRC", "BoolQA", "WiC"],
    };

    /// <summary>Other spellings users write (Hugging Face names, the papers' names).</summary>
    private static readonly Dictionary<string, string> Aliases = new(StringComparer.OrdinalIgnoreCase)
    {
        ["ag_news"] = "agnews", ["ag-news"] = "agnews", ["dbpedia_14"] = "dbpedia", ["yahoo_answers"] = "yahoo",
        ["boolq"] = "BoolQA", ["sst2"] = "SST-2", ["imdb"] = "IMDB", ["amazon_review_full"] = "amazon", ["yelp_review_full"] = "yelp",
    };

    /// <summary>GLUE's marker for an MNLI pair without a gold label (131 of the 7600 test pairs in O-LoRA's file). Such
    /// pairs are dropped: the official code keeps them and scores them as always wrong.</summary>
    public const string NoGoldLabel = "-";

    /// <summary>The full O-LoRA prompt of an example (what the model reads before generating the label).</summary>
    public static string PromptOf(TextExample example) => example.Instruction + example.Input + "\nAnswer:";

    /// <summary>The project's own instructions, used when O-LoRA's instruction file is not at hand (worded independently,
    /// so prompts differ from the official ones; give <see cref="TextTaskOptions.InstructionFile"/> to match them).</summary>
    private static readonly Dictionary<string, string> ProjectInstructions = new(StringComparer.Ordinal)
    {
        ["TC"] = "Which topic is this text about? Answer with one of the options.\n",
        ["SC"] = "How positive is the sentiment of this text? Answer with one of the options.\n",
        ["NLI"] = "Does sentence 1 entail sentence 2, contradict it, or neither? Answer with one of the options.\n",
        ["QQP"] = "Do the two questions ask the same thing? Answer with one of the options.\n",
        ["WiC"] = "Is the word used with the same meaning in both sentences? Answer with one of the options.\n",
        ["BoolQA"] = "Given the passage, is the question's statement true or false? Answer with one of the options.\n",
        ["MultiRC"] = "Given the passage and the question, is the candidate answer true or false? Answer with one of the options.\n",
    };

    public static Dataset Find(string name)
    {
        var canonical = Aliases.TryGetValue(name.Trim(), out var alias) ? alias : name.Trim();
        return Datasets.FirstOrDefault(d => d.Name.Equals(canonical, StringComparison.OrdinalIgnoreCase))
            ?? throw new ContinualMoEException($"unknown dataset '{name}' of the standard CL benchmark; valid names: {string.Join(", ", Datasets.Select(d => d.Name))}");
    }

    /// <summary>The dataset names of an order name (order1..order6) or of a comma-separated list of dataset names.</summary>
    public static IReadOnlyList<string> Resolve(string orderOrList)
    {
        if (Orders.TryGetValue(orderOrList.Trim(), out var order)) return order;
        if (orderOrList.StartsWith("order", StringComparison.OrdinalIgnoreCase) && !orderOrList.Contains(','))
            throw new ContinualMoEException($"unknown task order '{orderOrList}'; valid orders: {string.Join(", ", Orders.Keys)}");
        var names = orderOrList.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(n => Find(n).Name).ToList();
        if (names.Count == 0) throw new ContinualMoEException("empty task list: give an order (order1..order6) or dataset names separated by commas");
        return names;
    }

    /// <summary>Loads the tasks of <paramref name="orderOrList"/> from a <c>CL_Benchmark</c> folder (or an O-LoRA checkout
    /// that holds one): training from train.json, test from test.json (O-LoRA's dev.json is the same file).</summary>
    public static IReadOnlyList<TextTaskData> Load(string root, string orderOrList, TextTaskOptions? options = null)
    {
        options ??= new TextTaskOptions();
        var benchmark = BenchmarkFolder(root);
        var instructions = LoadInstructions(benchmark, options.InstructionFile);
        return Resolve(orderOrList).Select(name => LoadDataset(benchmark, Find(name), instructions, options)).ToList();
    }

    private static string BenchmarkFolder(string root)
    {
        TextFiles.RequireFolder(root, "CL benchmark");
        var nested = Path.Combine(root, "CL_Benchmark");
        return Directory.Exists(nested) ? nested : root;
    }

    private static TextTaskData LoadDataset(string benchmark, Dataset dataset, IReadOnlyDictionary<string, string> instructions, TextTaskOptions options)
    {
        var folder = Path.Combine(benchmark, dataset.Family, dataset.Name);
        if (!Directory.Exists(folder))
            throw ContinualMoEException.ForFile(folder, $"dataset folder of '{dataset.Name}' not found (expected <CL_Benchmark>/{dataset.Family}/{dataset.Name}/ with train.json, test.json, labels.json)");
        var labels = TextFiles.ReadStringArray(Path.Combine(folder, "labels.json"));
        var instruction = dataset.HasInstruction ? InstructionOf(dataset, instructions) + "Option: " + string.Join(", ", labels) + " \n" : "";
        var train = ReadSplit(Path.Combine(folder, "train.json"), labels, instruction);
        var test = ReadSplit(Path.Combine(folder, "test.json"), labels, instruction);
        return new TextTaskData(dataset.Name,
            TextSampling.Cap(train, options.TrainPerClass, options.TrainLimit, options.Seed, dataset.Name + "/train"),
            TextSampling.Cap(test, options.TestPerClass, options.TestLimit, options.Seed, dataset.Name + "/test"),
            labels);
    }

    private static string InstructionOf(Dataset dataset, IReadOnlyDictionary<string, string> instructions) =>
        instructions.TryGetValue(dataset.Family, out var text) ? text
            : throw new ContinualMoEException($"the instruction file has no zero-shot instruction for the task family '{dataset.Family}' (dataset '{dataset.Name}')");

    private static List<TextExample> ReadSplit(string path, IReadOnlyList<string> labels, string instruction)
    {
        var known = new HashSet<string>(labels, StringComparer.Ordinal);
        var examples = new List<TextExample>();
        foreach (var (item, line) in TextFiles.ReadObjects(path))
        {
            var label = TextFiles.Field(path, item, line, "label");
            var sentence = TextFiles.Field(path, item, line, "sentence");
            if (label == NoGoldLabel) continue;
            if (!known.Contains(label))
                throw ContinualMoEException.ForFile(path, $"{TextFiles.Where(line)}: unknown label '{label}' (labels.json has: {string.Join(", ", labels)})");
            examples.Add(new TextExample(instruction, sentence, label));
        }
        if (examples.Count == 0) throw ContinualMoEException.ForFile(path, "no examples");
        return examples;
    }

    /// <summary>O-LoRA's instruction file ({family: [{"instruction_type": "zero-shot", "instruction": ...}]}, the first
    /// zero-shot instruction of each family, as its "single" instruction strategy takes), else the project's own.</summary>
    internal static IReadOnlyDictionary<string, string> LoadInstructions(string benchmarkFolder, string? instructionFile)
    {
        var path = instructionFile ?? new[]
        {
            Path.Combine(benchmarkFolder, "instruction_config.json"),
            Path.Combine(benchmarkFolder, "..", "configs", "instruction_config.json"),
        }.FirstOrDefault(File.Exists);
        if (path == null) return ProjectInstructions;
        TextFiles.RequireFile(path, "instruction file");
        var instructions = new Dictionary<string, string>(StringComparer.Ordinal);
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllText(path));
            if (document.RootElement.ValueKind != JsonValueKind.Object) throw ContinualMoEException.ForFile(path, "expected an object of task families");
            foreach (var family in document.RootElement.EnumerateObject())
            {
                if (family.Value.ValueKind != JsonValueKind.Array) throw ContinualMoEException.ForFile(path, $"family '{family.Name}': expected an array of instructions");
                foreach (var entry in family.Value.EnumerateArray())
                {
                    if (entry.ValueKind != JsonValueKind.Object || !entry.TryGetProperty("instruction", out var text) || text.ValueKind != JsonValueKind.String)
                        throw ContinualMoEException.ForFile(path, $"family '{family.Name}': each entry needs an \"instruction\" string");
                    var type = entry.TryGetProperty("instruction_type", out var t) ? t.GetString() : "zero-shot";
                    if (type == "zero-shot" && !instructions.ContainsKey(family.Name)) instructions[family.Name] = text.GetString()!;
                }
            }
        }
        catch (JsonException e) { throw ContinualMoEException.ForFile(path, $"line {(e.LineNumber ?? 0) + 1}: malformed JSON", e); }
        return instructions;
    }
}
